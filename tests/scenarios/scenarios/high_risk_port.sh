# Attack surface: risky ports across the internet boundary. Internet hosts connect to
# port forwards on the router to the IoT device's telnet (2323 -> 23) and the laptop's
# RDP (3389); the laptop connects out to RDP, VNC, 4444 (Metasploit's default) and IRC.
DESCRIPTION="inbound telnet/RDP via port forwards from internet hosts; outbound 3389, 5900, 4444, 6667"

scenario() {
    local src
    for src in "$SCANNER_IP" 203.0.113.98 203.0.113.97; do
        nsx inet "$PY" "$LAB_PY" tcp-probe "$WAN_IP" 2323 0d0a "$src" >/dev/null
        nsx inet "$PY" "$LAB_PY" tcp-probe "$WAN_IP" 3389 0300001300000e0000000000000000000000 "$src" >/dev/null
        jsleep 1 0.3
    done
    local port
    for port in 3389 5900 4444 6667; do
        nsx laptop "$PY" "$LAB_PY" tcp-probe "$RISKY_IP" "$port" >/dev/null
        jsleep 0.5 0.2
    done
}
