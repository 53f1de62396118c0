# Attack: a TCP SYN flood from the attacker at the laptop's SSH port (bounded: 15000
# packets at up to 10 k/s).
DESCRIPTION="hping3 -S flood, 15000 SYNs to laptop:22"

scenario() {
    nsx attacker hping3 -q -S -p 22 -c 15000 -i u100 "$RES_laptop" >/dev/null 2>&1 || true
}
