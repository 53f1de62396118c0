# Attack (policy): DNS that bypasses the router's resolver. The IoT device sends its
# lookups straight to a public resolver (UDP and TCP 53), the laptop uses DNS over TLS
# (853) to the same resolver.
DESCRIPTION="lookups sent directly to the public resolver 203.0.113.53 (53/udp, 53/tcp, DoT 853)"

scenario() {
    local n
    for n in api.openweathermap.org firmware.espressif.com time.cloudflare.com www.google.com; do
        nsx iot dig +tries=1 +time=2 "@$RESOLVER_IP" A "$n" >/dev/null || true
        jsleep 0.7 0.3
    done
    nsx iot dig +tcp +tries=1 +time=2 "@$RESOLVER_IP" A firmware.espressif.com >/dev/null || true
    for n in www.wikipedia.org github.com www.youtube.com; do
        nsx laptop dig +tls +tries=1 +time=3 "@$RESOLVER_IP" A "$n" >/dev/null || true
        jsleep 0.7 0.3
    done
}
