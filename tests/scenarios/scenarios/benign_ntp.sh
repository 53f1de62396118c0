# Benign: SNTP time queries (ntpdig; never sets the clock) from three devices.
DESCRIPTION="SNTP queries to the NTP server from the laptop, the phone and the IoT device"

scenario() {
    local i
    for i in 1 2; do
        nsx laptop ntpdig -t 2 0.debian.pool.ntp.org >/dev/null 2>&1
        nsx phone ntpdig -t 2 time.android.com >/dev/null 2>&1
        nsx iot ntpdig -t 2 pool.ntp.org >/dev/null 2>&1
        jsleep 2 0.5
    done
}
