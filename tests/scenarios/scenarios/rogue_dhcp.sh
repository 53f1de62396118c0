# Attack: a rogue DHCP server. The attacker runs its own dnsmasq handing out itself as
# router and DNS server; a guest phone joining the LAN gets OFFERs from both servers
# (three rounds).
DESCRIPTION="second DHCP server (dnsmasq) on the attacker; a guest device sees two OFFERs"

scenario() {
    local att
    att=$(ip_of attacker)
    # The appliance watches the LAN before the attack, as it would at home: the laptop
    # renews its lease from the router's DHCP server first (a fresh netguardian that
    # sees two servers at once cannot know which is the home's; see the README).
    nsx laptop busybox udhcpc -f -q -n -i eth0 -s "$STATE/noop.script" -t 3 -T 2 -r "$RES_laptop" \
        >>"$STATE/log/scen-laptop-dhcp.log" 2>&1 || true
    bgjob attacker rogue-dnsmasq dnsmasq -k -C /dev/null --user=root --port=0 --interface=eth0 \
        --bind-interfaces --no-ping --dhcp-range="$LAN.200,$LAN.250,255.255.255.0,1h" \
        --dhcp-option=3,"$att" --dhcp-option=6,"$att" --dhcp-leasefile="$STATE/rogue.leases" \
        --log-dhcp --log-facility=-
    wait_for "rogue DHCP server" 10 listening attacker u "0.0.0.0:67"
    add_device guest
    sleep 1
    local i
    for i in 1 2 3; do
        nsx guest busybox udhcpc -f -q -n -i eth0 -s "$STATE/noop.script" -t 3 -T 2 \
            -x hostname:Galaxy-S23 >>"$STATE/log/scen-guest-dhcp.log" 2>&1 || true
        sleep 1
    done
    del_device guest
    stop_job rogue-dnsmasq
}
