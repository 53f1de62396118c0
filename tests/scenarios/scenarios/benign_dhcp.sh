# Benign: the devices' DHCP leases: a renewal (phone), a release and a new lease (IoT), a
# restarted client confirming its lease (laptop, INIT-REBOOT).
DESCRIPTION="DHCP renew, release + rediscover, and INIT-REBOOT against the router"

scenario() {
    kill -USR1 "$(cat "$STATE/pids/phone-dhcp")"
    sleep 2
    kill -USR2 "$(cat "$STATE/pids/iot-dhcp")"
    sleep 2
    kill -USR1 "$(cat "$STATE/pids/iot-dhcp")"
    wait_for "iot lease" 20 have_ip iot
    stop_pidfile "$STATE/pids/laptop-dhcp"
    start_dhcp_client laptop
    sleep 1
    wait_for "laptop lease" 20 have_ip laptop
    sleep 2
}
