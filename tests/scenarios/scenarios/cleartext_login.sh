# Attack surface: credentials in clear text. HTTP basic auth (the phone), an FTP login and
# download (the laptop), a telnet login (the laptop, typed like a person).
DESCRIPTION="HTTP basic auth, FTP USER/PASS, telnet login, all in clear text"

scenario() {
    browse phone http://www.example.com/admin/
    browse phone http://www.example.com/admin/ -u 'admin:Summer2024!'
    jsleep 1 0.3
    nsx laptop curl -s -o /dev/null --max-time 20 \
        'ftp://ftpuser:Ftp-2024%21@ftp.fileshare.example.net/backup-2024.tar.gz' || true
    jsleep 1 0.3
    nsx laptop timeout 30 "$PY" "$LAB_PY" telnet-login bbs.retro.example.net 23 admin hunter2 >/dev/null || true
}
