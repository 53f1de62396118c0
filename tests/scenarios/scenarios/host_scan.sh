# Attack: host discovery. The attacker ARP-sweeps the LAN /24 (nmap -sn), then sweeps
# the internet /24 with one SYN per host to telnet (23) and SMB (445), as worms do.
DESCRIPTION="nmap -sn ARP sweep of 192.168.50.0/24, then a SYN to 23 and 445 across 203.0.113.0/24"

scenario() {
    nsx attacker nmap -sn -n -T4 "$LAN.0/24" >"$STATE/log/nmap-sweep.txt"
    nsx attacker nmap -sS -n -Pn -T4 --max-retries 1 -p 23,445 203.0.113.0/24 >>"$STATE/log/nmap-sweep.txt"
}
