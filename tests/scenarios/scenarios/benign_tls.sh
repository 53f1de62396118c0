# Benign: TLS 1.3 (and one TLS 1.2) handshakes with SNI and ALPN from openssl s_client,
# each carrying an HTTP request, against the web server's certificate from the lab CA.
DESCRIPTION="openssl s_client with SNI, TLS 1.3 (and TLS 1.2), certificate verified"

tls_get() { # DEVICE NAME VERSION-FLAG
    printf 'GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$2" |
        nsx "$1" timeout 10 openssl s_client -quiet -connect "$2:443" -servername "$2" \
            -CAfile "$STATE/ca.crt" -verify_return_error -alpn http/1.1 "$3" >/dev/null 2>&1
}

scenario() {
    local n
    for n in www.wikipedia.org github.com www.debian.org; do
        tls_get laptop "$n" -tls1_3
        jsleep 0.8 0.3
    done
    tls_get phone www.youtube.com -tls1_3
    tls_get phone api.github.com -tls1_3
    tls_get laptop news.ycombinator.com -tls1_2
}
