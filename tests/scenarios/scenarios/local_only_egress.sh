# Attack surface: protocols that belong on the LAN sent to the internet: NetBIOS name
# service, SSDP, LLMNR, mDNS (unicast), SMB (445) and NetBIOS session (139), from the IoT
# device and the laptop to one internet address.
DESCRIPTION="NetBIOS-NS, SSDP, LLMNR, mDNS, SMB and NetBIOS-SSN to an internet host"

scenario() {
    nsx iot "$PY" "$LAB_PY" local-egress "$RISKY_IP"
    jsleep 1 0.3
    nsx laptop "$PY" "$LAB_PY" local-egress "$RISKY_IP"
}
