# Attack: the attacker (a Raspberry Pi on the LAN) SYN-scans the laptop's 1000 most common
# TCP ports (nmap -sS: half-open, a RST after each SYN-ACK).
DESCRIPTION="nmap -sS --top-ports 1000 from the attacker against the laptop"

scenario() {
    nsx attacker nmap -sS -n -Pn -T4 --top-ports 1000 "$RES_laptop" >"$STATE/log/nmap-syn.txt"
}
