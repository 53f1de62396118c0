# NixOS module: services.netguardian.
#
#   imports = [ netguardian.nixosModules.default ];
#   services.netguardian = {
#     enable = true;
#     interface = "eth0";            # or "auto": the default-route interface
#     listenAddress = "0.0.0.0";     # API on the LAN (default 127.0.0.1 only)
#     openFirewall = true;
#     settings.flow.max_flows = 100000;
#   };
#
# The units mirror systemd/netguardian.service and systemd/netguardian-retrain.{service,timer}
# (scripts/check-packaging checks that every [Service] key of the former appears here).
{
  config,
  lib,
  pkgs,
  utils,
  ...
}:

let
  inherit (lib)
    literalExpression
    mkEnableOption
    mkIf
    mkOption
    types
    ;

  cfg = config.services.netguardian;
  settingsFormat = pkgs.formats.toml { };
  configFile = settingsFormat.generate "netguardian-config.toml" cfg.settings;
  # The service and the command line (`netguardian token`, `netguardian train`) read the same file.
  configPath = "/etc/netguardian/config.toml";

  isLoopback = a: lib.hasPrefix "127." a || a == "::1" || a == "localhost";
  isWildcard = a: a == "0.0.0.0" || a == "::" || a == "[::]";
  # "192.0.2.1:8080", "[fd00::1]:8080"
  hostPort =
    a: p:
    if lib.hasInfix ":" a && !lib.hasPrefix "[" a then "[${a}]:${toString p}" else "${a}:${toString p}";

  # The capture interface, when named, is a device unit the service is bound to: the service
  # starts once the interface exists (also when it appears later, e.g. a USB adapter) and
  # stops when it goes away.
  deviceUnits = lib.optional (
    cfg.interface != "auto"
  ) "sys-subsystem-net-devices-${utils.escapeSystemdPath cfg.interface}.device";

  # A TOML section: free-form keys, a few of them declared.
  section =
    options:
    mkOption {
      type = types.submodule {
        freeformType = settingsFormat.type;
        inherit options;
      };
      default = { };
      description = "See `netguardian check-config` for every key of this section.";
    };

  # Sandboxing shared by both units.
  hardening = {
    # A UID allocated at start. Both units name the same dynamic user, so while the retrain
    # client runs it has the service's UID and can read the API token in the state directory.
    DynamicUser = true;
    User = "netguardian";
    Group = "netguardian";
    StateDirectory = "netguardian";
    StateDirectoryMode = "0700";
    ConfigurationDirectory = "netguardian";
    UMask = "0077";

    NoNewPrivileges = true;
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    PrivateDevices = true;
    PrivateMounts = true;
    PrivateIPC = true;
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectClock = true;
    ProtectHostname = true;
    ProtectProc = "invisible";
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    LockPersonality = true;
    RemoveIPC = true;
    KeyringMode = "private";
    # DuckDB, tract and the Rust code do not generate code at run time.
    MemoryDenyWriteExecute = true;
    SystemCallArchitectures = "native";
    SystemCallFilter = [
      "@system-service"
      "~@privileged @resources"
    ];
    SystemCallErrorNumber = "EPERM";
    DevicePolicy = "closed";
  };
in
{
  options.services.netguardian = {
    enable = mkEnableOption "netguardian, the home-network security monitor (live capture, detection and HTTP API)";

    package = mkOption {
      type = types.package;
      default =
        let
          p = pkgs.callPackage ./package.nix { };
        in
        if p.systemDuckdbOk then p else p.override { bundledDuckdb = true; };
      defaultText = literalExpression "pkgs.callPackage ./nix/package.nix { } # bundledDuckdb = true when nixpkgs' duckdb is too old";
      description = ''
        The netguardian package. By default it links nixpkgs' `duckdb` when that is at least
        the DuckDB release the Rust bindings were made for, and compiles DuckDB from source
        otherwise; `pkgs.callPackage ./nix/package.nix { bundledDuckdb = true; }` forces the
        latter.
      '';
    };

    interface = mkOption {
      type = types.str;
      default = "auto";
      example = "eth0";
      description = ''
        Interface to capture on; `auto` is libpcap's default device (the default-route
        interface). Sets `settings.capture.interface`.
      '';
    };

    listenAddress = mkOption {
      type = types.str;
      default = "127.0.0.1";
      example = "0.0.0.0";
      description = ''
        Address of the HTTP API (and its explorer at `/docs`). The default keeps it on this
        machine; `0.0.0.0` serves the LAN (every request needs the bearer token printed by
        `netguardian token`). Sets `settings.api.listen` with {option}`port`.
      '';
    };

    port = mkOption {
      type = types.port;
      default = 8080;
      description = "TCP port of the HTTP API.";
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open {option}`port` in the firewall (useful with a non-loopback {option}`listenAddress`).";
    };

    environmentFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = "/run/secrets/netguardian.env";
      description = ''
        File of `NETGUARDIAN_*` variables (nested keys joined with `__`) for settings that
        should stay out of the world-readable Nix store.
      '';
    };

    settings = mkOption {
      type = types.submodule {
        freeformType = settingsFormat.type;
        options = {
          state_dir = mkOption {
            type = types.str;
            default = "/var/lib/netguardian";
            description = ''
              Database, API token and models. The default is the unit's StateDirectory= (really
              /var/lib/private/netguardian, owned by the dynamic user); naming it here lets
              `netguardian token` run by root find the token.
            '';
          };
          capture = section {
            interface = mkOption {
              type = types.str;
              default = cfg.interface;
              defaultText = literalExpression "config.services.netguardian.interface";
              description = "Interface to capture on.";
            };
          };
          api = section {
            listen = mkOption {
              type = types.str;
              default = hostPort cfg.listenAddress cfg.port;
              defaultText = literalExpression ''"''${listenAddress}:''${toString port}"'';
              description = "Address and port of the HTTP API.";
            };
          };
        };
      };
      default = { };
      example = literalExpression ''
        {
          capture.filter = "not port 22";
          flow.max_flows = 100000;
          network.local_networks = [ "192.168.1.0/24" "fd00::/8" ];
        }
      '';
      description = ''
        netguardian's configuration (written to ${configPath}); every key of
        `netguardian check-config` can be set. Unknown keys make the service exit with
        status 78 and not restart.
      '';
    };

    retrain = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "Retrain the detection models nightly from the recent baseline (`netguardian train --wait`).";
      };
      schedule = mkOption {
        type = types.str;
        default = "*-*-* 03:30:00";
        example = "weekly";
        description = "When to retrain, as a systemd OnCalendar= expression.";
      };
      randomizedDelay = mkOption {
        type = types.str;
        default = "1h";
        description = "RandomizedDelaySec= of the retrain timer.";
      };
    };
  };

  config = mkIf cfg.enable {
    warnings =
      lib.optional (cfg.openFirewall && isLoopback cfg.listenAddress)
        "services.netguardian.openFirewall opens port ${toString cfg.port}, but the API listens on ${cfg.listenAddress} only; set services.netguardian.listenAddress (e.g. \"0.0.0.0\").";

    environment.etc."netguardian/config.toml".source = configFile;
    # `netguardian token`, `netguardian train` and `netguardian check-config` for the admin.
    environment.systemPackages = [ cfg.package ];

    networking.firewall.allowedTCPPorts = lib.optional cfg.openFirewall cfg.port;

    systemd.services.netguardian = {
      description = "netguardian home-network security monitor";
      wantedBy = [ "multi-user.target" ] ++ deviceUnits;
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ] ++ deviceUnits;
      bindsTo = deviceUnits;
      restartTriggers = [ configFile ];
      # The trainer, for retraining inside the service: `netguardian-train-models` or
      # `python3 -m netguardian_models.train` (with PYTHONPATH below).
      path = [ cfg.package ] ++ lib.optional (cfg.package ? trainerPython) cfg.package.trainerPython;
      environment = {
        PYTHONPATH = "${cfg.package}/lib/netguardian/python";
        # The Python trainer must not write bytecode into the read-only store or elsewhere.
        PYTHONDONTWRITEBYTECODE = "1";
      };

      serviceConfig = hardening // {
        # READY=1, STATUS=, WATCHDOG=1 and STOPPING=1 come from the main process.
        Type = "notify";
        NotifyAccess = "main";
        ExecStart = "${lib.getExe cfg.package} serve --config ${configPath}";
        EnvironmentFile = lib.optional (cfg.environmentFile != null) cfg.environmentFile;
        WatchdogSec = "30s";
        Restart = "on-failure";
        RestartSec = "5s";
        # 78 (EX_CONFIG): a bad configuration; restarting would only fail again.
        RestartPreventExitStatus = 78;
        TimeoutStopSec = "60s";

        # CAP_NET_RAW alone: it opens the AF_PACKET socket, and libpcap enables promiscuous
        # mode with PACKET_ADD_MEMBERSHIP/PACKET_MR_PROMISC on that socket, which needs no
        # CAP_NET_ADMIN. Not PrivateUsers=: capabilities inside a user namespace do not reach
        # the host's network namespace. Not PrivateNetwork=: we capture the host's network.
        # Not ProcSubset=pid: libpcap reads /proc/net/dev. Not IPAddressDeny=: the API may
        # serve the LAN.
        AmbientCapabilities = [ "CAP_NET_RAW" ];
        CapabilityBoundingSet = [ "CAP_NET_RAW" ];
        # AF_PACKET: capture. AF_NETLINK: interface enumeration. AF_INET/6: the API.
        # AF_UNIX: sd_notify and journald.
        RestrictAddressFamilies = [
          "AF_UNIX"
          "AF_INET"
          "AF_INET6"
          "AF_PACKET"
          "AF_NETLINK"
        ];
      };
    };

    systemd.services.netguardian-retrain = mkIf cfg.retrain.enable {
      description = "netguardian: retrain detection models from the recent baseline";
      # Only when the monitor runs; the timer does not start a stopped monitor.
      requisite = [ "netguardian.service" ];
      after = [ "netguardian.service" ];
      # A oneshot API client: nothing to restart when the system configuration changes.
      restartIfChanged = false;
      serviceConfig = hardening // {
        Type = "oneshot";
        ExecStart = "${lib.getExe cfg.package} train --wait --config ${configPath}";
        EnvironmentFile = lib.optional (cfg.environmentFile != null) cfg.environmentFile;
        TimeoutStartSec = "2h";
        CapabilityBoundingSet = "";
        AmbientCapabilities = "";
        PrivateUsers = true;
        ProcSubset = "pid";
        # It only talks to the API: on loopback, or on the one address the API is bound to.
        IPAddressDeny = "any";
        IPAddressAllow = [
          "localhost"
        ]
        ++ lib.optional (
          !isLoopback cfg.listenAddress && !isWildcard cfg.listenAddress
        ) cfg.listenAddress;
        RestrictAddressFamilies = [
          "AF_UNIX"
          "AF_INET"
          "AF_INET6"
        ];
      };
    };

    systemd.timers.netguardian-retrain = mkIf cfg.retrain.enable {
      description = "Nightly netguardian model retraining";
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnCalendar = cfg.retrain.schedule;
        RandomizedDelaySec = cfg.retrain.randomizedDelay;
        Persistent = true;
      };
    };
  };
}
