# Attack: the attacker connect-scans the IoT device's 1000 most common TCP ports
# (nmap -sT: full handshakes through the kernel's connect()).
DESCRIPTION="nmap -sT --top-ports 1000 from the attacker against the IoT device"

scenario() {
    nsx attacker nmap -sT -n -Pn -T4 --top-ports 1000 "$RES_iot" >"$STATE/log/nmap-connect.txt"
}
