# NixOS VM test: `gen` sends traffic (ping, HTTP) to `monitor`, which runs
# services.netguardian on eth1 (the test network). Asserts readiness and status from sd_notify,
# flows visible through the API with the bearer token, a non-root process holding only
# CAP_NET_RAW, promiscuous mode, a clean stop, and the unit's exposure score.
#
#   nix build .#checks.x86_64-linux.vm            # or: nix flake check
#   nix run .#checks.x86_64-linux.vm.driverInteractive
{
  pkgs,
  nixosModule ? ./module.nix,
  # null: the module's default package (built from this repository).
  package ? null,
}:

pkgs.testers.runNixOSTest {
  name = "netguardian";

  nodes = {
    gen =
      { pkgs, ... }:
      {
        environment.systemPackages = [ pkgs.curl ];
      };

    monitor =
      { lib, pkgs, ... }:
      {
        imports = [ nixosModule ];

        virtualisation.memorySize = 2048;
        virtualisation.cores = 2;

        services.netguardian = {
          enable = true;
          interface = "eth1";
          # Short timeouts so that flows are closed and written within seconds.
          settings.flow = {
            icmp_idle_timeout_secs = 2;
            udp_idle_timeout_secs = 2;
            tcp_closed_timeout_secs = 1;
            tcp_idle_timeout_secs = 10;
            active_timeout_secs = 5;
          };
        }
        // lib.optionalAttrs (package != null) { inherit package; };

        # Something for gen to talk to.
        services.nginx = {
          enable = true;
          virtualHosts.default = {
            default = true;
            root = pkgs.writeTextDir "index.html" "netguardian test page\n";
          };
        };
        networking.firewall.allowedTCPPorts = [ 80 ];

        environment.systemPackages = [ pkgs.curl ];
      };
  };

  testScript = ''
    import json

    CAP_NET_RAW = 13

    start_all()

    with subtest("netguardian reports readiness (Type=notify) and a status line"):
        # wait_for_unit returns once the unit is active, which for Type=notify means READY=1.
        monitor.wait_for_unit("netguardian.service")
        assert monitor.succeed("systemctl show -p Type --value netguardian.service").strip() == "notify"
        status = monitor.succeed("systemctl show -p StatusText --value netguardian.service").strip()
        print(f"StatusText: {status!r}")
        assert status != "", "no STATUS= from netguardian"
        assert monitor.succeed("systemctl show -p WatchdogUSec --value netguardian.service").strip() == "30s"
        monitor.succeed("systemctl is-active netguardian-retrain.timer")

    with subtest("the process is not root and holds only CAP_NET_RAW"):
        pid = monitor.succeed("systemctl show -p MainPID --value netguardian.service").strip()
        assert pid not in ("", "0"), f"no main PID: {pid!r}"
        proc = dict(
            line.split(":", 1)
            for line in monitor.succeed(f"cat /proc/{pid}/status").splitlines()
            if ":" in line
        )
        uids = proc["Uid"].split()
        assert all(u != "0" for u in uids), f"runs as root: Uid {uids}"
        user = monitor.succeed(f"getent passwd {uids[0]}").split(":")[0]
        assert user == "netguardian", f"runs as {user!r}"
        for field in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
            value = int(proc[field].strip(), 16)
            assert value == 1 << CAP_NET_RAW, f"{field} is {value:#x}, expected cap_net_raw only"
        # The state directory belongs to the dynamic user and nobody else.
        assert monitor.succeed("stat -c %U:%a /var/lib/private/netguardian").strip() == "netguardian:700"

    with subtest("capture runs in promiscuous mode with CAP_NET_RAW alone"):
        monitor.wait_until_succeeds("ip -d link show eth1 | grep -Eq 'promiscuity [1-9]'", timeout=30)

    with subtest("traffic from gen becomes flows in the API"):
        monitor.wait_for_open_port(80)
        gen.wait_for_unit("network-online.target")
        gen.succeed("ping -c 5 -i 0.2 monitor")
        for _ in range(5):
            gen.succeed("curl -sSf http://monitor/ | grep -q 'netguardian test page'")

        def flow_count(doc):
            if isinstance(doc, list):
                return len(doc)
            if isinstance(doc, dict):
                counts = [doc[k] for k in ("total", "count") if isinstance(doc.get(k), int)]
                counts += [len(doc[k]) for k in ("flows", "items", "data", "results") if isinstance(doc.get(k), list)]
                if counts:
                    return max(counts)
            raise Exception(f"unexpected /api/flows response: {str(doc)[:500]}")

        def flows_visible(last_try):
            out = monitor.succeed(
                'curl -sSf -H "Authorization: Bearer $(netguardian token)" http://127.0.0.1:8080/api/flows'
            )
            n = flow_count(json.loads(out))
            if last_try:
                print(f"/api/flows: {out[:2000]}")
            return n > 0

        retry(flows_visible, timeout=120)

        # Without the token the API refuses.
        code = monitor.succeed(
            "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/api/flows"
        ).strip()
        assert code == "401", f"/api/flows without a token answered {code}"

    with subtest("the sandbox stays within the exposure target"):
        print(monitor.succeed("systemd-analyze security --no-pager netguardian.service"))
        # --threshold is on the 0-100 scale: 25 is an exposure of 2.5.
        monitor.succeed("systemd-analyze security --no-pager --threshold=25 netguardian.service")

    with subtest("a stop flushes and exits cleanly"):
        monitor.succeed("systemctl stop netguardian.service")
        result = monitor.succeed("systemctl show -p Result --value netguardian.service").strip()
        assert result == "success", f"stop result: {result}"
  '';
}
