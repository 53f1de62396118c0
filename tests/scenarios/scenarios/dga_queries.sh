# Attack: a domain-generation algorithm. The laptop looks up 80 random-looking names (the
# router answers NXDOMAIN), a few ordinary lookups in between.
DESCRIPTION="80 DGA-looking names resolved at the router (NXDOMAIN), some normal names between"

scenario() {
    local n i=0
    while read -r n; do
        nsx laptop dig +tries=1 +time=1 A "$n" >/dev/null || true
        i=$((i + 1))
        [ $((i % 20)) -ne 0 ] || nsx laptop dig +tries=1 +time=1 A www.google.com >/dev/null || true
        jsleep 0.25 0.15
    done < <("$PY" "$LAB_PY" dga 20240605 "${NG_DGA_COUNT:-80}")
}
