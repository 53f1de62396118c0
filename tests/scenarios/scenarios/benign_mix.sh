# Benign: a quiet minute of a home network, everything at once with human timing: the
# laptop browses, the phone syncs time and announces itself, the IoT device reports to
# its cloud API, lookups go through the router.
DESCRIPTION="a minute of mixed benign traffic from all devices with realistic timing"

scenario() {
    local dur=${NG_MIX_SECONDS:-45}
    [ "${NG_FAST:-0}" = 1 ] && dur=20
    local end=$((SECONDS + dur))
    (
        local sites=(https://www.wikipedia.org/ https://github.com/ http://www.debian.org/
            https://www.bbc.co.uk/news https://news.ycombinator.com/ https://www.youtube.com/)
        while [ $SECONDS -lt $end ]; do
            browse laptop "${sites[RANDOM % ${#sites[@]}]}"
            jsleep_until "$end" 4 3
        done
    ) &
    (
        nsx phone ntpdig -t 2 time.android.com >/dev/null 2>&1 || true
        nsx phone "$PY" "$LAB_PY" mdns Pixel-7 "$(ip_of phone)" _googlecast._tcp
        while [ $SECONDS -lt $end ]; do
            UA="Mozilla/5.0 (Linux; Android 14; Pixel 7)" browse phone https://www.youtube.com/
            jsleep_until "$end" 9 4
        done
    ) &
    (
        nsx iot ntpdig -t 2 pool.ntp.org >/dev/null 2>&1 || true
        while [ $SECONDS -lt $end ]; do
            UA="ESP32 HTTP Client/1.0" browse iot https://api.openweathermap.org/api/v1/report \
                -X POST -d '{"t":21.5,"h":40}' -H 'Content-Type: application/json'
            jsleep_until "$end" 15 5
        done
    ) &
    (
        nsx laptop dig +short www.google.com >/dev/null || true
        nsx laptop ntpdig -t 2 0.debian.pool.ntp.org >/dev/null 2>&1 || true
    ) &
    wait
}
