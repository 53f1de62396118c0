#!/usr/bin/env bash
# netlab: a small home network in Linux network namespaces, for recording labeled
# captures of benign traffic and attacks (issue #4). See README.md beside this file.
#
#   netlab.sh setup                 build the lab (namespaces, bridge, router, servers)
#   netlab.sh teardown              remove everything the lab made
#   netlab.sh run SCENARIO OUTDIR   record OUTDIR/SCENARIO.pcap (builds the lab first and
#                                   removes it afterwards unless it was already up)
#   netlab.sh all OUTDIR [NAME...]  every scenario (or the ones named), one lab, one
#                                   capture each
#   netlab.sh list                  the scenarios, in the order `all` runs them (that of
#                                   manifest.toml)
#   netlab.sh check                 are all the tools there? (prints what is missing)
#   netlab.sh shell DEVICE [CMD]    a shell (or CMD) inside a device's namespace
#
# Environment:
#   NG_PREFIX        namespace prefix (default "ng"): ng-router, ng-laptop, ...; give
#                    parallel runs different prefixes
#   NG_STATE_DIR     configs, keys, logs, pids (default /run/netlab-$NG_PREFIX)
#   NG_KEEP=1        leave the lab up after `run`/`all` (for poking around)
#   NG_SCENARIO_TIMEOUT  seconds before a scenario is stopped (default 300)
#   NG_FAST=1        shorter beacon and baseline phases (for trying things out)
#
# Root only. Nothing is created in the host's network namespace: the bridge lives in
# namespace $P-lan, and the only host files touched are /etc/netns/$P-* (per-namespace
# resolv.conf/hosts that `ip netns exec` bind-mounts) and /run/sshd (sshd's fixed
# privilege-separation directory).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
SCEN_DIR="$HERE/scenarios"
LAB_PY="$HERE/lab.py"
PY=/usr/bin/python3

P=${NG_PREFIX:-ng}
STATE=${NG_STATE_DIR:-/run/netlab-$P}
export NG_PREFIX=$P NG_STATE_DIR=$STATE

# ---------------------------------------------------------------------------------------
# Addresses
LAN=192.168.50
ROUTER_IP=$LAN.1
WAN_IP=198.51.100.2        # the router's public address (NAT)
ISP_IP=198.51.100.1        # its upstream, inside the "internet" namespace
WWW_IP=203.0.113.10        # web sites (HTTP + HTTPS, TLS 1.2/1.3)
TUNNEL_NS_IP=203.0.113.2   # iodined, authoritative for $TUNNEL_ZONE
FTP_IP=203.0.113.21
TELNET_IP=203.0.113.23
LEGACY_TLS_IP=203.0.113.30 # openssl s_server that still speaks TLS 1.0/1.1
RISKY_IP=203.0.113.45      # listens on 139, 445, 3389, 4444, 5900, 6667
RESOLVER_IP=203.0.113.53   # a public resolver (DNS on 53, DNS over TLS on 853)
C2_IP=203.0.113.66         # the beacon's server
SCANNER_IP=203.0.113.99    # an internet scanner hitting port forwards
NTP_IP=203.0.113.123
DROP_IP=203.0.113.200      # the exfiltration target
TUNNEL_ZONE=t.tunnel-lab.net
IODINE_PW=ng-lab-tunnel

# Fixed MACs: vendor OUIs from the IEEE registry, and one randomized (locally
# administered) MAC as modern phones use.
MAC_router=50:c7:bf:50:00:01    # TP-Link
MAC_laptop=3c:58:c2:50:00:17    # Intel
MAC_phone=da:a1:19:6b:3e:42     # locally administered (randomized)
MAC_iot=24:0a:c4:50:00:77       # Espressif
MAC_attacker=dc:a6:32:50:00:66  # Raspberry Pi
MAC_tv=8c:79:f5:50:00:88        # Samsung (joins in new_device)
MAC_guest=6e:2f:91:4a:5c:01     # randomized (the rogue_dhcp victim)
# DHCP reservations (the phone and the TV get addresses from the pool)
RES_laptop=$LAN.23
RES_iot=$LAN.77
RES_attacker=$LAN.66

DEVICES=(laptop phone iot attacker)
ALL_NS=(lan router laptop phone iot attacker inet tv guest)


# ---------------------------------------------------------------------------------------
# Helpers (also used by the scenario files)

log() { printf '[netlab %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
ns() { printf '%s-%s' "$P" "$1"; }
nsx() { local d=$1; shift; ip netns exec "$(ns "$d")" "$@"; }
ns_exists() { ip netns list | awk '{print $1}' | grep -qx "$(ns "$1")"; }

ip_of() { nsx "$1" ip -4 -o addr show dev eth0 | awk '{split($4, a, "/"); print a[1]; exit}'; }
mac_of() { local v="MAC_$1"; printf '%s' "${!v}"; }

# Long-lived lab daemons: daemon DEVICE NAME CMD...
daemon() {
    local d=$1 name=$2
    shift 2
    mkdir -p "$STATE/pids" "$STATE/log"
    # A simple command, not a function: $! is then the daemon itself (ip netns exec execs).
    ip netns exec "$(ns "$d")" "$@" </dev/null >>"$STATE/log/$name.log" 2>&1 &
    echo $! >"$STATE/pids/$name"
}

# Scenario background jobs, stopped when the scenario ends: bgjob DEVICE NAME CMD...
bgjob() {
    local d=$1 name=$2
    shift 2
    mkdir -p "$STATE/scen" "$STATE/log"
    ip netns exec "$(ns "$d")" "$@" </dev/null >>"$STATE/log/scen-$name.log" 2>&1 &
    echo $! >"$STATE/scen/$name"
}

stop_pidfile() { # PIDFILE [SIGNAL [SECONDS before KILL]]
    local f=$1 sig=${2:-TERM} grace=${3:-3} pid
    [ -f "$f" ] || return 0
    pid=$(cat "$f")
    rm -f "$f"
    [ -n "$pid" ] || return 0
    kill -"$sig" "$pid" 2>/dev/null || return 0
    for _ in $(seq $((grace * 10))); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

stop_job() { stop_pidfile "$STATE/scen/$1" "${2:-TERM}" "${3:-3}"; }

stop_scenario_jobs() {
    local f
    for f in "$STATE"/scen/*; do
        [ -e "$f" ] && stop_pidfile "$f"
    done
    return 0
}

# sleep BASE seconds +- JITTER seconds (uniform)
jsleep() { jsleep_until 0 "$@"; }

# jsleep_until END BASE [JITTER]: the same, but never past $SECONDS = END (0: no limit)
jsleep_until() {
    local end=$1 ms
    ms=$(awk -v b="$2" -v j="${3:-0}" -v r="$RANDOM" 'BEGIN{printf "%d", (b + j * (2 * r / 32767 - 1)) * 1000}')
    if [ "$end" -gt 0 ]; then
        local left=$(((end - SECONDS) * 1000))
        [ "$ms" -le "$left" ] || ms=$left
    fi
    [ "$ms" -gt 0 ] || return 0
    sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
}

# wait_for DESCRIPTION SECONDS CMD...: poll CMD until it succeeds
wait_for() {
    local what=$1 secs=$2
    shift 2
    local end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || die "timed out waiting for $what"
        sleep 0.2
    done
}

listening() { # DEVICE PROTO(t|u) ADDR:PORT
    nsx "$1" ss -H -n -l"$2" | awk '{sub(/%[^:]*/, "", $4); print $4}' | grep -qx "$3"
}

# Web traffic as a device makes it: name lookup through the router, then the request.
browse() { # DEVICE URL [curl args]
    local d=$1 url=$2
    shift 2
    nsx "$d" curl -s -o /dev/null --max-time 15 --cacert "$STATE/ca.crt" \
        -A "${UA:-Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Firefox/115.0}" "$@" "$url" || true
}

# ---------------------------------------------------------------------------------------
# Setup

need_root() { [ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"; }

required_tools() {
    local t missing=()
    for t in ip ethtool nft tcpdump dnsmasq dhclient busybox dig curl openssl /usr/sbin/sshd \
        ssh-keygen "$PY" ntpdig nmap hping3 hydra iodine iodined arpspoof radvd atk6-fake_router26 ss awk; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    "$PY" -c 'import pyftpdlib' 2>/dev/null || missing+=("python3-pyftpdlib")
    busybox --list 2>/dev/null | grep -qx telnetd || missing+=("busybox telnetd (busybox-static)")
    busybox --list 2>/dev/null | grep -qx udhcpc || missing+=("busybox udhcpc")
    if [ ${#missing[@]} -gt 0 ]; then
        echo "missing: ${missing[*]} (run tests/scenarios/deps.sh)"
        return 1
    fi
}

offloads_off() { # NS-DEVICE IFACE
    nsx "$1" ethtool -K "$2" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
}

# A device namespace on the LAN bridge: add_device DEVICE
add_device() {
    local d=$1 mac
    mac=$(mac_of "$d")
    ip netns add "$(ns "$d")"
    nsx "$d" ip link set lo up
    ip -n "$(ns lan)" link add "p-$d" type veth peer name eth0 netns "$(ns "$d")"
    nsx "$d" ip link set eth0 address "$mac"
    ip -n "$(ns lan)" link set "p-$d" master br0
    offloads_off lan "p-$d"
    offloads_off "$d" eth0
    ip -n "$(ns lan)" link set "p-$d" up
    # The device's resolver (as DHCP hands it out) and an empty hosts file, bind-mounted
    # over /etc/resolv.conf and /etc/hosts by `ip netns exec`.
    mkdir -p "/etc/netns/$(ns "$d")"
    printf 'search home.lan\nnameserver %s\n' "$ROUTER_IP" >"/etc/netns/$(ns "$d")/resolv.conf"
    printf '127.0.0.1 localhost\n::1 localhost\n' >"/etc/netns/$(ns "$d")/hosts"
    nsx "$d" ip link set eth0 up
}

del_device() {
    local d=$1 f
    for f in "$STATE"/pids/"$d"-*; do
        [ -e "$f" ] && stop_pidfile "$f"
    done
    if ns_exists "$d"; then
        ns_kill "$d" TERM
        ip netns del "$(ns "$d")" 2>/dev/null || true
    fi
    ip -n "$(ns lan)" link del "p-$d" 2>/dev/null || true
    rm -rf "/etc/netns/$(ns "$d")"
}

write_configs() {
    mkdir -p "$STATE"/{pids,log,scen,cap,ftp}
    # Names the lab's DNS servers answer; everything else is NXDOMAIN.
    cat >"$STATE/hosts" <<EOF
$WWW_IP www.wikipedia.org en.wikipedia.org upload.wikimedia.org www.debian.org deb.debian.org
$WWW_IP github.com api.github.com www.bbc.co.uk news.ycombinator.com www.google.com
$WWW_IP connectivitycheck.gstatic.com clients3.google.com www.youtube.com i.ytimg.com
$WWW_IP api.openweathermap.org firmware.espressif.com captive.apple.com www.apple.com
$WWW_IP mail.example.org www.example.com
$FTP_IP ftp.fileshare.example.net
$TELNET_IP bbs.retro.example.net
$LEGACY_TLS_IP legacy.oldbank-portal.com
$RISKY_IP files.smbshare.example.net
$RESOLVER_IP dns.resolver.example.net
$C2_IP cdn-updates.azureedge-sync.com
$DROP_IP upload.file-drop.cc
$NTP_IP time.cloudflare.com pool.ntp.org 0.debian.pool.ntp.org 1.debian.pool.ntp.org time.android.com
EOF
    # Router: DHCP + DNS for the LAN; the tunnel zone is delegated to iodined.
    cat >"$STATE/router-dnsmasq.conf" <<EOF
user=root
interface=eth0
bind-interfaces
no-resolv
no-hosts
addn-hosts=$STATE/hosts
local-ttl=300
local=/#/
server=/$TUNNEL_ZONE/$TUNNEL_NS_IP
domain=home.lan
local=/home.lan/
expand-hosts
dhcp-authoritative
dhcp-range=$LAN.100,$LAN.199,255.255.255.0,12h
dhcp-host=$MAC_laptop,$RES_laptop
dhcp-host=$MAC_iot,$RES_iot
dhcp-host=$MAC_attacker,$RES_attacker
dhcp-option=option:router,$ROUTER_IP
dhcp-option=option:dns-server,$ROUTER_IP
dhcp-option=option:ntp-server,$NTP_IP
dhcp-leasefile=$STATE/router.leases
log-queries
log-dhcp
EOF
    # The "public resolver" on the internet.
    cat >"$STATE/resolver-dnsmasq.conf" <<EOF
user=root
listen-address=$RESOLVER_IP
bind-interfaces
no-resolv
no-hosts
addn-hosts=$STATE/hosts
local-ttl=300
local=/#/
log-queries
EOF
    # Certificates: a lab CA, a server certificate for every web name, and a weak
    # self-signed RSA-1024/SHA-1 certificate for the legacy TLS server.
    if [ ! -f "$STATE/server.crt" ]; then
        local sans
        sans=$(awk -v ORS=, '{for (i = 2; i <= NF; i++) print "DNS:" $i}' "$STATE/hosts")
        sans="${sans}IP:$WWW_IP,IP:$C2_IP,IP:$DROP_IP,IP:$RESOLVER_IP"
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/O=netlab/CN=netlab root CA" \
            -keyout "$STATE/ca.key" -out "$STATE/ca.crt" >/dev/null 2>&1
        openssl req -newkey rsa:2048 -nodes -subj "/CN=www.wikipedia.org" \
            -keyout "$STATE/server.key" -out "$STATE/server.csr" >/dev/null 2>&1
        printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$sans" >"$STATE/server.ext"
        openssl x509 -req -in "$STATE/server.csr" -CA "$STATE/ca.crt" -CAkey "$STATE/ca.key" \
            -CAcreateserial -days 825 -sha256 -extfile "$STATE/server.ext" \
            -out "$STATE/server.crt" >/dev/null 2>&1
        openssl req -x509 -newkey rsa:1024 -sha1 -nodes -days 3650 \
            -subj "/C=US/O=Old Bank/CN=legacy.oldbank-portal.com" \
            -keyout "$STATE/legacy.key" -out "$STATE/legacy.crt" >/dev/null 2>&1
    fi
    [ -f "$STATE/ssh_host_ed25519_key" ] ||
        ssh-keygen -q -t ed25519 -N '' -f "$STATE/ssh_host_ed25519_key" >/dev/null
    cat >"$STATE/sshd_config" <<EOF
Port 22
ListenAddress 0.0.0.0
HostKey $STATE/ssh_host_ed25519_key
PidFile none
UsePAM no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PermitRootLogin yes
StrictModes no
AuthorizedKeysFile none
MaxAuthTries 6
MaxStartups 64:30:128
LoginGraceTime 15
EOF
    # Telnet "login" for the lab's telnet servers: real prompts, one lab account, no
    # shell (nothing of the host's accounts is exposed).
    local h
    for h in iot inet; do
        cat >"$STATE/telnet-login-$h" <<EOF
#!/bin/bash
host=$([ "$h" = iot ] && echo ESP_500077 || echo bbs)
for try in 1; do # one try per connection: hydra stays in step with the prompts
    printf '%s login: ' "\$host"
    IFS= read -r u || exit 0
    printf 'Password: '
    stty -echo 2>/dev/null
    IFS= read -r p || exit 0
    stty echo 2>/dev/null
    printf '\r\n'
    u=\${u%\$'\r'}; p=\${p%\$'\r'}
    if [ "\$u" = admin ] && [ "\$p" = "hunter2" ]; then
        printf '\r\nBusyBox v1.35.0 built-in shell (ash)\r\n\r\n\$ '
        while IFS= read -r line; do
            case "\${line%\$'\r'}" in
                exit|logout) exit 0 ;;
                uptime) printf ' 12:00:01 up 3 days,  4:05,  load average: 0.00, 0.01, 0.00\r\n' ;;
            esac
            printf '\$ '
        done
        exit 0
    fi
    sleep 1
    printf 'Login incorrect\r\n'
done
EOF
        chmod 755 "$STATE/telnet-login-$h"
    done
    # DHCP client scripts: configure the address and default route, touch nothing else.
    cat >"$STATE/udhcpc.script" <<'EOF'
#!/bin/sh
case "$1" in
    deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
    bound|renew)
        if [ -z "$mask" ]; then
            mask=0; for o in $(echo "$subnet" | tr . ' '); do
                while [ "$o" -gt 0 ]; do mask=$((mask + (o & 1))); o=$((o >> 1)); done
            done
        fi
        cur=$(ip -4 -o addr show dev "$interface" | awk '{print $4}')
        [ "$cur" = "$ip/$mask" ] || ip -4 addr flush dev "$interface"
        ip addr replace "$ip/$mask" dev "$interface"
        [ -z "$router" ] || ip route replace default via "${router%% *}" dev "$interface" ;;
esac
exit 0
EOF
    printf '#!/bin/sh\nexit 0\n' >"$STATE/noop.script"
    cat >"$STATE/dhclient.script" <<'EOF'
#!/bin/bash
m2p() { local n=0 o; IFS=. read -ra o <<<"$1"; for x in "${o[@]}"; do while [ "$x" -gt 0 ]; do n=$((n + (x & 1))); x=$((x >> 1)); done; done; echo $n; }
case "$reason" in
    PREINIT) ip link set "$interface" up ;;
    BOUND|RENEW|REBIND|REBOOT)
        p=$(m2p "$new_subnet_mask")
        [ -z "$old_ip_address" ] || [ "$old_ip_address" = "$new_ip_address" ] || ip -4 addr flush dev "$interface"
        ip addr replace "$new_ip_address/$p" dev "$interface"
        [ -z "$new_routers" ] || ip route replace default via "${new_routers%% *}" dev "$interface" ;;
    EXPIRE|FAIL|RELEASE|STOP) ip -4 addr flush dev "$interface" ;;
esac
exit 0
EOF
    chmod 755 "$STATE"/*.script
    cat >"$STATE/dhclient.conf" <<'EOF'
send host-name "dell-xps13";
send dhcp-client-identifier = hardware;
request subnet-mask, broadcast-address, time-offset, routers, domain-name,
        domain-name-servers, domain-search, host-name, ntp-servers, interface-mtu;
EOF
    printf '\r\n' >"$STATE/issue"
    printf 'Lab FTP area. Nothing to see here.\n' >"$STATE/ftp/README.txt"
    head -c 300000 /dev/urandom >"$STATE/ftp/backup-2024.tar.gz"
}

start_dhcp_client() { # DEVICE
    local d=$1
    case $d in
        laptop)
            daemon "$d" "$d-dhcp" dhclient -4 -d -v -cf "$STATE/dhclient.conf" -sf "$STATE/dhclient.script" \
                -lf "$STATE/$d.leases" -pf "$STATE/$d.dhclient.pid" eth0 ;;
        phone)
            daemon "$d" "$d-dhcp" busybox udhcpc -f -i eth0 -s "$STATE/udhcpc.script" -t 10 -T 1 -A 2 \
                -x hostname:Pixel-7 -V android-dhcp-14 -O ntpsrv ;;
        iot)
            daemon "$d" "$d-dhcp" busybox udhcpc -f -i eth0 -s "$STATE/udhcpc.script" -t 10 -T 1 -A 2 \
                -x hostname:ESP_500077 -V espressif ;;
        attacker)
            daemon "$d" "$d-dhcp" busybox udhcpc -f -i eth0 -s "$STATE/udhcpc.script" -t 10 -T 1 -A 2 \
                -x hostname:raspberrypi ;;
        tv)
            daemon "$d" "$d-dhcp" busybox udhcpc -f -i eth0 -s "$STATE/udhcpc.script" -t 10 -T 1 -A 2 \
                -x hostname:Samsung-TV -V "SAMSUNG-TV 2023" -O ntpsrv ;;
    esac
}

have_ip() { [ -n "$(ip_of "$1")" ]; }

setup() {
    need_root
    required_tools >&2 || exit 1
    if ns_exists lan || ns_exists router; then
        log "stale lab with prefix '$P' found: tearing it down first"
        teardown
    fi
    local t0=$SECONDS
    log "setup (prefix $P, state $STATE)"
    write_configs
    mkdir -p /run/sshd

    # The switch: a bridge in its own namespace; nothing in it speaks (no addresses,
    # no IPv6), so the capture sees only the devices' frames.
    ip netns add "$(ns lan)"
    nsx lan sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    nsx lan ip link set lo up
    nsx lan ip link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
    nsx lan ip link set br0 up

    # The internet: one namespace that owns 203.0.113.0/24 (every address answers).
    ip netns add "$(ns inet)"
    nsx inet ip link set lo up
    nsx inet sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    local a
    for a in $WWW_IP $TUNNEL_NS_IP $FTP_IP $TELNET_IP $LEGACY_TLS_IP $RISKY_IP $RESOLVER_IP \
        $C2_IP $SCANNER_IP $NTP_IP $DROP_IP; do
        nsx inet ip addr add "$a/32" dev lo
    done
    nsx inet ip route add local 203.0.113.0/24 dev lo

    # The router: LAN on the bridge, WAN towards the internet, NAT between them.
    add_device router
    nsx router ip addr add "$ROUTER_IP/24" dev eth0
    ip -n "$(ns router)" link add wan0 type veth peer name isp0 netns "$(ns inet)"
    offloads_off router wan0
    offloads_off inet isp0
    nsx router ip addr add "$WAN_IP/30" dev wan0
    nsx router ip link set wan0 up
    nsx inet ip addr add "$ISP_IP/30" dev isp0
    nsx inet ip link set isp0 up
    nsx router ip route add default via "$ISP_IP"
    nsx router sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0
    nsx router nft -f - <<EOF
table ip nat {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        iifname "wan0" tcp dport 2323 dnat to $RES_iot:23
        iifname "wan0" tcp dport 3389 dnat to $RES_laptop:3389
    }
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan0" ip saddr $LAN.0/24 masquerade
    }
}
EOF

    # The devices.
    for a in "${DEVICES[@]}"; do add_device "$a"; done
    nsx attacker sysctl -qw net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.eth0.send_redirects=0

    # Servers.
    daemon router router-dnsmasq dnsmasq -k -C "$STATE/router-dnsmasq.conf" --log-facility=-
    daemon inet resolver-dnsmasq dnsmasq -k -C "$STATE/resolver-dnsmasq.conf" --log-facility=-
    daemon inet inet-lab "$PY" "$LAB_PY" inet "$STATE"
    daemon inet legacy-tls openssl s_server -accept "$LEGACY_TLS_IP:443" -cert "$STATE/legacy.crt" \
        -key "$STATE/legacy.key" -cipher 'DEFAULT:@SECLEVEL=0' -min_protocol TLSv1 -www
    daemon inet ftpd "$PY" -m pyftpdlib -i "$FTP_IP" -p 21 -u ftpuser -P 'Ftp-2024!' \
        -d "$STATE/ftp" -r 30000-30100
    daemon inet inet-telnetd busybox telnetd -F -p 23 -b "$TELNET_IP" -f "$STATE/issue" -l "$STATE/telnet-login-inet"
    daemon inet iodined iodined -f -c -l "$TUNNEL_NS_IP" -P "$IODINE_PW" 10.99.0.1/27 "$TUNNEL_ZONE"
    daemon iot iot-telnetd busybox telnetd -F -p 23 -f "$STATE/issue" -l "$STATE/telnet-login-iot"
    daemon laptop laptop-sshd /usr/sbin/sshd -D -e -f "$STATE/sshd_config"
    daemon laptop laptop-rdp "$PY" "$LAB_PY" sink 0.0.0.0 3389

    wait_for "router dnsmasq" 10 listening router u "$ROUTER_IP:53"
    for a in "${DEVICES[@]}"; do start_dhcp_client "$a"; done
    wait_for "resolver" 10 listening inet u "$RESOLVER_IP:53"
    wait_for "web servers" 15 listening inet t "$WWW_IP:443"
    wait_for "legacy TLS server" 10 listening inet t "$LEGACY_TLS_IP:443"
    wait_for "FTP server" 15 listening inet t "$FTP_IP:21"
    wait_for "iodined" 10 listening inet u "$TUNNEL_NS_IP:53"
    wait_for "sshd" 10 listening laptop t "0.0.0.0:22"
    for a in "${DEVICES[@]}"; do wait_for "DHCP lease on $a" 30 have_ip "$a"; done
    [ "$(ip_of laptop)" = "$RES_laptop" ] || die "laptop got $(ip_of laptop), expected $RES_laptop"
    # Let the devices' start-up chatter (IPv6 DAD, router solicitations) die down.
    sleep 2
    log "lab up in $((SECONDS - t0)) s: router $ROUTER_IP, laptop $(ip_of laptop), phone $(ip_of phone), iot $(ip_of iot), attacker $(ip_of attacker)"
}

# Signals every process still running inside one of the lab's namespaces (all started by
# the lab): ns_kill DEVICE SIGNAL
ns_kill() {
    local pids=()
    mapfile -t pids < <(ip netns pids "$(ns "$1")" 2>/dev/null || true)
    [ ${#pids[@]} -eq 0 ] || kill -"$2" "${pids[@]}" 2>/dev/null || true
}

teardown() {
    local f d
    for f in "$STATE"/scen/* "$STATE"/pids/*; do
        [ -e "$f" ] && stop_pidfile "$f"
    done
    for d in "${ALL_NS[@]}"; do
        if ns_exists "$d"; then ns_kill "$d" TERM; fi
    done
    sleep 0.3
    for d in "${ALL_NS[@]}"; do
        if ns_exists "$d"; then
            ns_kill "$d" KILL
            ip netns del "$(ns "$d")" 2>/dev/null || true
        fi
        rm -rf "/etc/netns/$(ns "$d")"
    done
    [ "${NG_KEEP_STATE:-0}" = 1 ] || rm -rf "$STATE"
    log "teardown done (prefix $P)"
}

# ---------------------------------------------------------------------------------------
# Capture and scenarios

scenario_file() {
    local f="$SCEN_DIR/$1.sh"
    [ -f "$f" ] || die "no scenario '$1' (see: $SELF list)"
    printf '%s' "$f"
}

# The scenarios in manifest order, then any script the manifest does not list.
list_scenarios() {
    local s f order
    order=$(awk -F'"' '/^name *= *"/ {print $2}' "$HERE/manifest.toml")
    for s in $order; do [ -f "$SCEN_DIR/$s.sh" ] && echo "$s"; done
    for f in "$SCEN_DIR"/*.sh; do
        s=$(basename "$f" .sh)
        grep -qx "$s" <<<"$order" || echo "$s"
    done
}

# Runs inside a child process: the scenario's own errors stop it (set -e) without
# stopping the lab or the other scenarios.
exec_scenario() {
    local name=$1
    set -E
    trap 'log "scenario $name: failed (exit $?): ${BASH_SOURCE[0]##*/}:$LINENO: $BASH_COMMAND"' ERR
    # shellcheck disable=SC1090
    source "$(scenario_file "$name")"
    scenario
}

tcpdump_start() { # TAG SNAPLEN FILTER
    local tag=$1 snap=$2 filter=$3
    # shellcheck disable=SC2086
    ip netns exec "$(ns lan)" tcpdump -i br0 -n -U -Z root -B 32768 -s "$snap" \
        -w "$STATE/cap/$tag.pcap" $filter >"$STATE/log/tcpdump-$tag.log" 2>&1 &
    echo $! >"$STATE/cap/$tag.pid"
    wait_for "tcpdump ($tag)" 10 grep -q "listening on" "$STATE/log/tcpdump-$tag.log"
}

tcpdump_stop() { # TAG; sets CAP_PKTS and CAP_DROPS (not a $(...): wait needs this shell)
    local tag=$1 pid
    pid=$(cat "$STATE/cap/$tag.pid")
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -f "$STATE/cap/$tag.pid"
    CAP_PKTS=$(awk '/packets captured/ {print $1}' "$STATE/log/tcpdump-$tag.log")
    CAP_DROPS=$(awk '/dropped by kernel/ {print $1}' "$STATE/log/tcpdump-$tag.log")
    CAP_PKTS=${CAP_PKTS:-0} CAP_DROPS=${CAP_DROPS:-0}
}

run_scenario() { # NAME OUTDIR
    local name=$1 out=$2 f trunc snap
    f=$(scenario_file "$name")
    mkdir -p "$out"
    # A scenario may ask for part of its traffic to be cut to the headers (the bulk of a
    # large upload), so captures stay small: TRUNCATE_FILTER (BPF), TRUNCATE_SNAPLEN.
    trunc=$(bash -c 'source "$1"; TRUNCATE_FILTER=""; source "$2"; printf %s "$TRUNCATE_FILTER"' _ "$SELF" "$f")
    snap=$(bash -c 'source "$1"; TRUNCATE_SNAPLEN=""; source "$2"; printf %s "${TRUNCATE_SNAPLEN:-128}"' _ "$SELF" "$f")
    rm -f "$STATE"/cap/*.pcap
    log "scenario $name: start"
    local t0 rc=0
    t0=$(date +%s.%N)
    if [ -n "$trunc" ]; then
        tcpdump_start full 262144 "not ($trunc)"
        tcpdump_start cut "$snap" "$trunc"
    else
        tcpdump_start full 262144 ""
    fi
    local started
    started=$(date -u +%FT%TZ)
    # In the background and waited for, so that Ctrl-C / SIGTERM reach on_signal at once
    # (bash runs traps only between foreground commands, and timeout detaches the
    # scenario from the terminal's process group).
    timeout -k 5 "${NG_SCENARIO_TIMEOUT:-300}" "$SELF" __exec "$name" &
    SCEN_PID=$!
    wait "$SCEN_PID" || rc=$?
    SCEN_PID=
    stop_scenario_jobs
    sleep 1 # the last answers and FINs
    local pkts drops
    tcpdump_stop full
    pkts=$CAP_PKTS drops=$CAP_DROPS
    if [ -n "$trunc" ]; then
        tcpdump_stop cut
        pkts=$((pkts + CAP_PKTS)) drops=$((drops + CAP_DROPS))
        "$PY" "$LAB_PY" merge "$out/$name.pcap" "$STATE/cap/full.pcap" "$STATE/cap/cut.pcap"
    else
        mv "$STATE/cap/full.pcap" "$out/$name.pcap"
    fi
    local secs size
    secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
    size=$(stat -c %s "$out/$name.pcap")
    local status=ok
    [ "$rc" -eq 0 ] || status="failed (exit $rc)"
    [ "$drops" -eq 0 ] || status="$status, $drops packets dropped by the capture"
    cat >"$out/$name.json" <<EOF
{"scenario": "$name", "status": "$status", "started": "$started", "seconds": $secs,
 "packets": $pkts, "bytes": $size, "truncated_filter": "$trunc",
 "hosts": {"router": ["$MAC_router", "$ROUTER_IP"], "laptop": ["$MAC_laptop", "$(ip_of laptop)"],
  "phone": ["$MAC_phone", "$(ip_of phone)"], "iot": ["$MAC_iot", "$(ip_of iot)"],
  "attacker": ["$MAC_attacker", "$(ip_of attacker)"], "tv": ["$MAC_tv", ""], "guest": ["$MAC_guest", ""]}}
EOF
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$secs" "$pkts" "$size" >>"$out/index.tsv"
    log "scenario $name: $status, ${secs}s, $pkts packets, $((size / 1024)) KiB"
    # Anything a scenario leaves in the neighbour caches (arpspoof) is forgotten.
    local d
    for d in router "${DEVICES[@]}"; do nsx "$d" ip neigh flush dev eth0 2>/dev/null || true; done
    return "$rc"
}

SCEN_PID=
on_signal() {
    log "interrupted"
    [ -z "$SCEN_PID" ] || kill -TERM "$SCEN_PID" 2>/dev/null || true
    exit 130
}

cmd_run() { # NAME OUTDIR
    need_root
    local name=$1 out=$2
    scenario_file "$name" >/dev/null
    if ! ns_exists lan; then
        [ "${NG_KEEP:-0}" = 1 ] || trap teardown EXIT
        trap on_signal INT TERM
        setup
    fi
    run_scenario "$name" "$out"
}

cmd_all() { # OUTDIR [SCENARIO...]
    need_root
    local out=$1 s failed=() t0=$SECONDS names
    shift
    if [ $# -gt 0 ]; then
        for s in "$@"; do scenario_file "$s" >/dev/null; done
        names="$*"
    else
        names=$(list_scenarios)
    fi
    mkdir -p "$out"
    rm -f "$out/index.tsv"
    [ "${NG_KEEP:-0}" = 1 ] || trap teardown EXIT
    trap on_signal INT TERM
    ns_exists lan || setup
    for s in $names; do
        run_scenario "$s" "$out" || failed+=("$s")
    done
    log "all scenarios done in $((SECONDS - t0)) s; captures in $out"
    column -t -s $'\t' "$out/index.tsv" >&2 || cat "$out/index.tsv" >&2
    if [ ${#failed[@]} -gt 0 ]; then
        log "failed: ${failed[*]}"
        return 1
    fi
}

main() {
    local cmd=${1:-}
    case $cmd in
        setup) setup ;;
        teardown) need_root; teardown ;;
        run) [ $# -eq 3 ] || die "usage: $0 run SCENARIO OUTDIR"; cmd_run "$2" "$3" ;;
        all) [ $# -ge 2 ] || die "usage: $0 all OUTDIR [SCENARIO...]"; shift; cmd_all "$@" ;;
        list) list_scenarios ;;
        check) required_tools ;;
        shell) [ $# -ge 2 ] || die "usage: $0 shell DEVICE [CMD...]"; local d=$2; shift 2
               if [ $# -eq 0 ]; then nsx "$d" bash; else nsx "$d" "$@"; fi ;;
        __exec) exec_scenario "$2" ;;
        *) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$SELF"
           [ -z "$cmd" ] || exit 2 ;;
    esac
}

# Run unless sourced (run_scenario sources this file to read a scenario's settings).
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
