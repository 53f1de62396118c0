# A new device joins: after a baseline of the usual devices' traffic, a smart TV with a
# MAC never seen before plugs in, asks for an address by DHCP, announces itself by mDNS
# and starts talking (DNS, NTP, HTTPS).
DESCRIPTION="baseline, then a Samsung TV joins (DHCP, mDNS, DNS, NTP, HTTPS)"

scenario() {
    local before=${NG_BASELINE_SECONDS:-20} i
    [ "${NG_FAST:-0}" = 1 ] && before=8
    local end=$((SECONDS + before))
    while [ $SECONDS -lt $end ]; do
        browse laptop https://www.wikipedia.org/
        UA="Mozilla/5.0 (Linux; Android 14; Pixel 7)" browse phone https://www.youtube.com/
        jsleep_until "$end" 3 1
    done
    add_device tv
    start_dhcp_client tv
    wait_for "tv lease" 30 have_ip tv
    nsx tv "$PY" "$LAB_PY" mdns Samsung-TV "$(ip_of tv)" _airplay._tcp
    nsx tv ntpdig -t 2 time.cloudflare.com >/dev/null 2>&1 || true
    for i in 1 2 3; do
        UA="Mozilla/5.0 (SMART-TV; Linux; Tizen 7.0) AppleWebKit/537.36" browse tv https://www.youtube.com/
        browse tv https://i.ytimg.com/vi/
        jsleep 2 0.5
    done
    del_device tv
}
