# Benign: ordinary lookups (A, AAAA, MX, TXT, PTR, local names) against the router's
# dnsmasq, which answers them from its local data.
DESCRIPTION="dig a handful of normal names, local names and a reverse lookup at the router"

scenario() {
    local n
    for n in www.wikipedia.org www.debian.org github.com api.github.com www.bbc.co.uk \
        www.google.com www.youtube.com; do
        nsx laptop dig +tries=2 +time=2 A "$n" >/dev/null
        jsleep 0.4 0.2
    done
    nsx laptop dig +tries=2 +time=2 AAAA www.wikipedia.org >/dev/null
    nsx laptop dig +tries=2 +time=2 MX example.org >/dev/null
    nsx phone dig +tries=2 +time=2 A time.android.com >/dev/null
    nsx phone dig +tries=2 +time=2 A captive.apple.com >/dev/null
    nsx phone dig +tries=2 +time=2 TXT www.example.com >/dev/null
    nsx iot dig +tries=2 +time=2 A firmware.espressif.com >/dev/null
    nsx laptop dig +tries=2 +time=2 A dell-xps13.home.lan >/dev/null
    nsx laptop dig +tries=2 +time=2 -x "$RES_iot" >/dev/null
    jsleep 1 0.3
    nsx phone dig +tries=2 +time=2 A www.wikipedia.org >/dev/null
    nsx phone dig +tries=2 +time=2 AAAA www.wikipedia.org >/dev/null
}
