# Benign: the laptop and the phone browse a few sites over HTTP and HTTPS (names looked
# up through the router), the IoT device runs its connectivity check.
DESCRIPTION="laptop and phone browse sites over HTTP and HTTPS; IoT connectivity check"
PHONE_UA="Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36"

scenario() {
    local i
    for i in 1 2 3; do
        browse laptop https://www.wikipedia.org/
        browse laptop "https://en.wikipedia.org/wiki/Home_network?r=$i"
        UA=$PHONE_UA browse phone https://www.bbc.co.uk/news
        jsleep 1.2 0.5
        browse laptop http://www.debian.org/
        UA=$PHONE_UA browse phone http://news.ycombinator.com/
        browse laptop https://github.com/
        UA="ESP32 HTTP Client/1.0" browse iot http://connectivitycheck.gstatic.com/generate_204
        jsleep 2 0.8
    done
}
