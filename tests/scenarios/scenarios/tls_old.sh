# Attack surface: obsolete TLS. The IoT device talks TLS 1.0 and TLS 1.1 (SECLEVEL 0,
# SHA-1 suites) to a legacy server with a self-signed RSA-1024/SHA-1 certificate.
DESCRIPTION="openssl s_client -tls1 and -tls1_1 to a legacy server (RSA-1024, SHA-1 cert)"

old_tls() { # VERSION-FLAG
    printf 'GET / HTTP/1.0\r\nHost: legacy.oldbank-portal.com\r\n\r\n' |
        nsx iot timeout 10 openssl s_client -quiet -connect legacy.oldbank-portal.com:443 \
            -servername legacy.oldbank-portal.com "$1" -cipher 'DEFAULT:@SECLEVEL=0' >/dev/null 2>&1 || true
}

scenario() {
    old_tls -tls1
    jsleep 1 0.3
    old_tls -tls1_1
    jsleep 1 0.3
    old_tls -tls1
}
