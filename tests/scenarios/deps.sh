#!/usr/bin/env bash
# Installs the Debian packages the attack-scenario lab (tests/scenarios/netlab.sh) drives.
# Needs root (or sudo). Installs only what is missing; safe to run again.
#
# No package is allowed to start a service on the host while it is installed: a
# policy-rc.d that denies every start is in place for the duration of apt-get (only if
# the machine has none of its own). The lab starts every daemon itself, inside its
# network namespaces, with its own configuration files.
set -euo pipefail

pkgs=(
    iproute2            # ip netns / link / addr / route / neigh
    ethtool             # switch veth offloads off, so the capture holds wire-sized frames
    nftables            # NAT and port forwarding on the lab router
    tcpdump             # the capture on the LAN bridge
    dnsmasq-base        # DHCP + DNS on the router, the "public resolver", the rogue DHCP server
    isc-dhcp-client     # dhclient on the laptop
    busybox-static      # udhcpc (phone, IoT, TV, guest), telnetd (IoT device, internet host); Debian's
                        # plain busybox has no telnetd applet
    bind9-dnsutils      # dig (also DNS over TLS: dig +tls)
    curl                # web, uploads, HTTP basic auth, FTP login
    openssl             # certificates, s_server, s_client
    openssh-server      # sshd (hydra's target)
    openssh-client      # ssh-keygen for the lab's host keys
    python3             # lab servers (web, NTP, mDNS, DoT, uploads) and pcap merging
    python3-pyftpdlib   # FTP server
    ntpsec-ntpdig       # ntpdig: an SNTP query that never sets the clock
    nmap                # SYN, connect and ping scans
    hping3              # SYN, ICMP and UDP floods
    hydra               # SSH and telnet brute force
    iodine              # iodine + iodined: DNS tunnel
    dsniff              # arpspoof
    radvd               # IPv6 router advertisements of the lab router (rogue_ra)
    thc-ipv6            # atk6-fake_router26: the rogue IPv6 router
)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    own_policy=1
fi
cleanup() { [ "$own_policy" -eq 0 ] || $sudo rm -f "$policy"; }
trap cleanup EXIT

echo "installing: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
