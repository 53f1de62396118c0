#!/usr/bin/python3
"""Small servers and clients for the netguardian attack-scenario lab (netlab.sh).

Standard library only (Debian's python3). Subcommands:

  inet STATE_DIR          the "internet" host's servers: HTTP/HTTPS (pages, basic auth,
                          uploads), NTP, DNS over TLS, TCP sinks on risky ports
  sink ADDR PORT...       accept TCP connections on ADDR:PORT... and read until EOF
  mdns NAME IP [SERVICE]  announce NAME.local (and SERVICE) by mDNS, then query for a service
  telnet-login HOST PORT USER PASSWORD
                          log in over telnet like a person would (prompt, user, password)
  dga SEED N              print N DGA-looking domain names (deterministic for a seed)
  udp-probe ADDR PORT HEXPAYLOAD
                          send one UDP datagram (and wait briefly for an answer)
  tcp-probe ADDR PORT [HEX [SRC]]
                          connect (from SRC), send HEX bytes (default CRLF), read, close
  http ADDR PORT          a plain HTTP server (GET pages, PUT/POST uploads)
  local-egress ADDR       NetBIOS-NS, SSDP, LLMNR, mDNS and SMB/NetBIOS-SSN packets sent to
                          ADDR: protocols that belong on the LAN, aimed at the internet
  merge OUT IN...         merge pcap files (same link type) by timestamp
"""

import base64
import hashlib
import heapq
import os
import random
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# ---------------------------------------------------------------------------------------
# The internet host


class LabHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nginx/1.22.1"
    sys_version = ""
    auth = "admin:Summer2024!"

    def log_message(self, fmt, *args):  # quiet: one line per request to stderr
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def _send(self, code, body, ctype="text/html; charset=utf-8", extra=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0]
        path = self.path.split("?")[0]
        if path.startswith("/admin"):
            want = "Basic " + base64.b64encode(self.auth.encode()).decode()
            if self.headers.get("Authorization") != want:
                self._send(401, b"<h1>401 Authorization Required</h1>\n",
                           extra={"WWW-Authenticate": 'Basic realm="admin"'})
                return
            self._send(200, b"<h1>Router admin</h1><p>status: ok</p>\n")
            return
        if path == "/generate_204":
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path.startswith("/api/") or path.startswith("/beacon"):
            body = b'{"status":"ok","tasks":[],"next":2}\n'
            self._send(200, body, "application/json")
            return
        # A page whose size depends on the path, like a real site's assets.
        seed = int(hashlib.sha1((host + path).encode()).hexdigest()[:8], 16)
        n = 2000 + seed % 60000
        chunk = ("<p>%s %s</p>\n" % (host, path)).encode()
        body = b"<html><head><title>" + host.encode() + b"</title></head><body>\n"
        body += chunk * (n // len(chunk) + 1) + b"</body></html>\n"
        self._send(200, body)

    def _read_body(self):
        total = 0
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            while True:
                line = self.rfile.readline(100)
                if not line:
                    break
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline(100)
                    break
                left = size
                while left:
                    b = self.rfile.read(min(left, 1 << 16))
                    if not b:
                        return total
                    left -= len(b)
                    total += len(b)
                self.rfile.readline(100)
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left:
                b = self.rfile.read(min(left, 1 << 16))
                if not b:
                    break
                left -= len(b)
                total += len(b)
        return total

    def do_POST(self):
        n = self._read_body()
        self._send(200, ('{"received":%d}\n' % n).encode(), "application/json")

    do_PUT = do_POST


class Http(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def serve_http(addr, port):
    srv = Http((addr, port), LabHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()


class TlsHandler(LabHandler):
    def setup(self):
        # Handshake in the handler thread, not in accept(): a slow client blocks nobody.
        self.request.settimeout(15)
        self.request.do_handshake()
        super().setup()

    def handle(self):
        try:
            super().handle()
        except (OSError, ssl.SSLError):
            pass

    def finish(self):
        try:
            super().finish()
            # Close the TLS session properly (close_notify), as real servers do.
            self.request.settimeout(2)
            self.request.unwrap()
        except (OSError, ValueError, ssl.SSLError):
            pass


class Https(Http):
    def handle_error(self, request, client_address):
        pass  # failed handshakes (scanners, old clients) are not worth a traceback


def serve_https(addr, port, ctx):
    srv = Https((addr, port), TlsHandler)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=srv.serve_forever, daemon=True).start()


NTP_EPOCH = 2208988800


def serve_ntp(addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 123))

    def loop():
        while True:
            data, peer = s.recvfrom(512)
            if len(data) < 48:
                continue
            now = time.time() + NTP_EPOCH
            sec, frac = int(now), int((now % 1) * 2**32)
            vn = (data[0] >> 3) & 7 or 4
            resp = struct.pack(
                "!BBbbII4sIIIIIIII",
                (0 << 6) | (vn << 3) | 4,  # LI 0, version as asked, mode 4 (server)
                2, 6, -20,                 # stratum 2, poll 2^6, precision 2^-20
                0x00000400, 0x00000800,    # root delay, root dispersion
                socket.inet_aton("203.0.113.124"),
                sec - 60, 0,               # reference time
                *struct.unpack("!II", data[40:48]),  # originate = client's transmit
                sec, frac,                 # receive
                sec, frac,                 # transmit
            )
            s.sendto(resp, peer)

    threading.Thread(target=loop, daemon=True).start()


def serve_dot(addr, ctx, upstream):
    """DNS over TLS on ADDR:853, relaying each query to UPSTREAM over UDP."""

    class H(socketserver.BaseRequestHandler):
        def handle(self):
            conn = self.request
            try:
                conn.do_handshake()
                while True:
                    hdr = recv_exact(conn, 2)
                    if not hdr:
                        return
                    q = recv_exact(conn, struct.unpack("!H", hdr)[0])
                    if q is None:
                        return
                    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    u.settimeout(3)
                    u.sendto(q, (upstream, 53))
                    r, _ = u.recvfrom(4096)
                    u.close()
                    conn.sendall(struct.pack("!H", len(r)) + r)
            except (OSError, ssl.SSLError):
                return

    class S(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    srv = S((addr, 853), H)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=srv.serve_forever, daemon=True).start()


def recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        b = conn.recv(n - len(buf))
        if not b:
            return None
        buf += b
    return buf


def serve_sinks(addr, ports):
    class H(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.settimeout(10)
            try:
                port = self.request.getsockname()[1]
                if port in (23, 2323):
                    self.request.sendall(b"\r\nlogin: ")
                elif port == 6667:
                    self.request.sendall(b":irc.lab NOTICE * :*** Looking up your hostname\r\n")
                while self.request.recv(4096):
                    pass
            except OSError:
                pass

    class S(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    for p in ports:
        srv = S((addr, p), H)
        threading.Thread(target=srv.serve_forever, daemon=True).start()


def tls_context(state, name, legacy=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(state, name + ".crt"), os.path.join(state, name + ".key"))
    ctx.set_alpn_protocols(["http/1.1"])
    if not legacy:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def cmd_inet(state):
    ctx = tls_context(state, "server")
    dot = tls_context(state, "server")
    dot.set_alpn_protocols(["dot"])
    # Web sites, the beacon's "C2", the upload target: plain and TLS.
    for addr in ("203.0.113.10", "203.0.113.66", "203.0.113.200"):
        serve_http(addr, 80)
        serve_https(addr, 443, ctx)
    serve_ntp("203.0.113.123")
    serve_dot("203.0.113.53", dot, "203.0.113.53")
    # Risky and local-only service ports on one "internet" address.
    serve_sinks("203.0.113.45", [139, 445, 3389, 4444, 5900, 6667])
    sys.stderr.write("lab inet servers up\n")
    sys.stderr.flush()
    while True:
        time.sleep(3600)


def cmd_sink(addr, ports):
    serve_sinks(addr, [int(p) for p in ports])
    while True:
        time.sleep(3600)


# ---------------------------------------------------------------------------------------
# mDNS


def dns_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def rr(name, rtype, rclass, ttl, rdata):
    return dns_name(name) + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def cmd_mdns(host, ip, service=None, query=None, repeat=2):
    """Announce HOST.local -> IP (and a service instance), then ask for QUERY."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(ip))
    s.bind(("", 5353))
    fqdn = host + ".local"
    answers = [rr(fqdn, 1, 0x8001, 120, socket.inet_aton(ip))]
    if service:
        inst = "%s.%s.local" % (host, service)
        answers.append(rr(service + ".local", 12, 1, 4500, dns_name(inst)))
        answers.append(rr(inst, 33, 0x8001, 120, struct.pack("!HHH", 0, 0, 8009) + dns_name(fqdn)))
        txt = b"".join(bytes([len(t)]) + t for t in (b"model=lab", b"version=1"))
        answers.append(rr(inst, 16, 0x8001, 4500, txt))
    msg = struct.pack("!HHHHHH", 0, 0x8400, 0, len(answers), 0, 0) + b"".join(answers)
    for i in range(repeat):
        s.sendto(msg, ("224.0.0.251", 5353))
        time.sleep(1.0 + i)
    if query:
        q = struct.pack("!HHHHHH", 0, 0, 1, 0, 0, 0) + dns_name(query + ".local") + struct.pack("!HH", 12, 1)
        s.sendto(q, ("224.0.0.251", 5353))
        s.settimeout(1.5)
        try:
            while True:
                s.recvfrom(4096)
        except OSError:
            pass
    s.close()


# ---------------------------------------------------------------------------------------
# Clients


def cmd_telnet_login(host, port, user, password):
    """Logs in over telnet: answers option negotiation with refusals, types the user name
    at the login prompt and the password at the password prompt, runs one command."""
    s = socket.create_connection((host, int(port)), timeout=10)
    buf = b""

    def read_until(words, limit=8.0):
        nonlocal buf
        end = time.time() + limit
        while time.time() < end:
            low = buf.lower()
            for w in words:
                if w in low:
                    buf = b""
                    return True
            s.settimeout(max(0.1, end - time.time()))
            try:
                data = s.recv(1024)
            except socket.timeout:
                break
            if not data:
                break
            # Telnet negotiation: refuse everything (IAC DO x -> IAC WONT x, WILL -> DONT).
            out = bytearray()
            i = 0
            while i < len(data):
                if data[i] == 255 and i + 1 < len(data):
                    cmd = data[i + 1]
                    if cmd in (251, 252, 253, 254) and i + 2 < len(data):
                        opt = data[i + 2]
                        reply = 254 if cmd in (251, 252) else 252
                        if opt in (1, 3) and cmd == 251:
                            reply = 253  # let the server echo and suppress go-ahead
                        s.sendall(bytes([255, reply, opt]))
                        i += 3
                        continue
                    i += 2
                    continue
                out.append(data[i])
                i += 1
            buf += bytes(out)
        return False

    read_until([b"login:"])
    time.sleep(0.4)
    for ch in user:
        s.sendall(ch.encode())
        time.sleep(0.08)
    s.sendall(b"\r\n")
    read_until([b"password:"])
    time.sleep(0.6)
    s.sendall(password.encode() + b"\r\n")
    ok = read_until([b"$ ", b"# "])
    if ok:
        time.sleep(0.5)
        s.sendall(b"uptime\r\n")
        time.sleep(0.5)
        s.sendall(b"exit\r\n")
        time.sleep(0.3)
    s.close()
    print("telnet login %s" % ("ok" if ok else "failed"))


def cmd_dga(seed, n):
    rnd = random.Random(int(seed))
    tlds = ["com", "net", "org", "info", "biz", "ru", "top", "xyz"]
    cons = "bcdfghjklmnpqrstvwxz"
    for _ in range(int(n)):
        k = rnd.randint(12, 22)
        name = "".join(rnd.choice(cons + "aeiou" + cons + "0123456789"[: rnd.randint(0, 4)]) for _ in range(k))
        print("%s.%s" % (name, rnd.choice(tlds)))


def cmd_udp_probe(addr, port, payload_hex):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    s.sendto(bytes.fromhex(payload_hex), (addr, int(port)))
    try:
        s.recvfrom(4096)
    except OSError:
        pass
    s.close()


def cmd_tcp_probe(addr, port, data=None, src=None):
    try:
        s = socket.create_connection((addr, int(port)), timeout=5,
                                     source_address=(src, 0) if src else None)
    except OSError as e:
        print("tcp %s:%s: %s" % (addr, port, e))
        return
    s.settimeout(0.8)
    try:
        s.sendall(bytes.fromhex(data) if data else b"\r\n")
        s.recv(1024)
    except OSError:
        pass
    time.sleep(0.3)
    s.close()


def cmd_http(addr, port):
    serve_http(addr, int(port))
    while True:
        time.sleep(3600)


def cmd_local_egress(addr):
    # NetBIOS name service: node status request for "*".
    nb = struct.pack("!HHHHHH", 0x4E21, 0x0000, 1, 0, 0, 0)
    nb += b"\x20" + b"CKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" + b"\x00" + struct.pack("!HH", 0x21, 1)
    cmd_udp_probe(addr, 137, nb.hex())
    # SSDP discovery.
    ssdp = (b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\n"
            b"MX: 1\r\nST: ssdp:all\r\n\r\n")
    cmd_udp_probe(addr, 1900, ssdp.hex())
    # LLMNR: who is "wpad"?
    ll = struct.pack("!HHHHHH", 0x7A11, 0, 1, 0, 0, 0) + dns_name("wpad") + struct.pack("!HH", 1, 1)
    cmd_udp_probe(addr, 5355, ll.hex())
    # mDNS service enumeration, unicast.
    md = struct.pack("!HHHHHH", 0, 0, 1, 0, 0, 0) + dns_name("_services._dns-sd._udp.local")
    md += struct.pack("!HH", 12, 1)
    cmd_udp_probe(addr, 5353, md.hex())
    # SMB2 NEGOTIATE over direct TCP (445) and a NetBIOS session request (139).
    smb2 = b"\xfeSMB" + struct.pack("<H", 64) + bytes(58)  # header: NEGOTIATE, message id 0
    neg = struct.pack("<HHHHI", 36, 2, 1, 0, 0x7F) + bytes(16) + bytes(8) + struct.pack("<HH", 0x0202, 0x0210)
    msg = smb2 + neg
    cmd_tcp_probe(addr, 445, (struct.pack("!I", len(msg)) + msg).hex())
    called = b"\x20" + b"CKFDENECFDEFFCFGEFFCCACACACACACA" + b"\x00"
    cmd_tcp_probe(addr, 139, (bytes([0x81, 0, 0, len(called) * 2]) + called + called).hex())


# ---------------------------------------------------------------------------------------
# pcap merge


def read_pcap(path):
    with open(path, "rb") as f:
        hdr = f.read(24)
        if len(hdr) < 24:
            return None, iter(())
        magic = struct.unpack("<I", hdr[:4])[0]
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            e = "<"
        else:
            e = ">"
        nano = struct.unpack(e + "I", hdr[:4])[0] == 0xA1B23C4D
        data = f.read()

    def gen():
        off = 0
        while off + 16 <= len(data):
            ts, tf, incl, orig = struct.unpack(e + "IIII", data[off:off + 16])
            rec = data[off:off + 16 + incl]
            off += 16 + incl
            yield (ts * 1_000_000_000 + (tf if nano else tf * 1000)), rec

    return (hdr, e, nano), gen()


def cmd_merge(out, inputs):
    heads, gens = [], []
    for p in inputs:
        h, g = read_pcap(p)
        if h is not None:
            heads.append(h)
            gens.append(g)
    if not heads:
        raise SystemExit("merge: no input")
    (hdr, e, nano) = heads[0]
    for h in heads[1:]:
        if h[1] != e or h[2] != nano or h[0][20:24] != hdr[20:24]:
            raise SystemExit("merge: inputs differ in byte order, precision or link type")
    # Snap length: the largest of the inputs.
    snap = max(struct.unpack(e + "I", h[0][16:20])[0] for h in heads)
    with open(out, "wb") as f:
        f.write(hdr[:16] + struct.pack(e + "I", snap) + hdr[20:24])
        for _, rec in heapq.merge(*gens, key=lambda t: t[0]):
            f.write(rec)


def main():
    a = sys.argv[1:]
    if not a:
        print(__doc__)
        return 2
    c = a[0]
    if c == "inet":
        cmd_inet(a[1])
    elif c == "sink":
        cmd_sink(a[1], a[2:])
    elif c == "mdns":
        cmd_mdns(a[1], a[2], a[3] if len(a) > 3 and a[3] else None, a[4] if len(a) > 4 else None)
    elif c == "telnet-login":
        cmd_telnet_login(*a[1:5])
    elif c == "dga":
        cmd_dga(a[1], a[2])
    elif c == "udp-probe":
        cmd_udp_probe(*a[1:4])
    elif c == "tcp-probe":
        cmd_tcp_probe(*a[1:5])
    elif c == "http":
        cmd_http(a[1], a[2])
    elif c == "local-egress":
        cmd_local_egress(a[1])
    elif c == "merge":
        cmd_merge(a[1], a[2:])
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
