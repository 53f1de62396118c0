# Attack: an ICMP echo flood from the attacker at the router (15000 pings, up to 10 k/s).
DESCRIPTION="hping3 -1 flood, 15000 ICMP echo requests to the router"

scenario() {
    nsx attacker hping3 -q -1 -d 56 -c 15000 -i u100 "$ROUTER_IP" >/dev/null 2>&1 || true
}
