# Benign: devices announce themselves and browse for services by multicast DNS.
DESCRIPTION="mDNS announcements (host names, services) and service queries"

scenario() {
    nsx phone "$PY" "$LAB_PY" mdns Pixel-7 "$(ip_of phone)" _googlecast._tcp &
    nsx iot "$PY" "$LAB_PY" mdns ESP-500077 "$(ip_of iot)" _http._tcp &
    wait
    nsx laptop "$PY" "$LAB_PY" mdns dell-xps13 "$(ip_of laptop)" _workstation._tcp _googlecast._tcp
}
