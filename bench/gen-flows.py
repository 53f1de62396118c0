#!/usr/bin/env python3
"""Writes a synthetic home-network capture with many short flows (stdlib only).

usage: bench/gen-flows.py OUT.pcap [--flows N] [--devices D] [--hours H] [--end EPOCH] [--seed S]

The capture is made for load-testing the API on a database of realistic size, not for
testing decoders: D devices (192.168.1.10.., MACs with real vendor prefixes) behind a
router (192.168.1.1) open N flows whose start times are spread evenly (with jitter) over
the H hours ending at END (default: now, so `/api/analytics?hours=24` covers them all).
The flows are:

- 62% complete TCP connections to internet hosts (SYN, SYN-ACK, ACK + request,
  response, FIN, FIN, ACK: Zeek state SF), ports 443/80/8080/22/993/...; on 80 and
  8080 the request and response are HTTP/1.1 (an `http` row each), elsewhere opaque;
- 5% TCP between two home devices (SF);
- 3% unanswered SYNs (S0) and 2% refused ones (SYN, RST-ACK: REJ);
- 28% DNS over UDP to the router: a query and its answer (an A record), over a few
  thousand distinct names, so the `dns` table gets a row per flow too.

Client ports cycle per device through 32768..60999, so no 5-tuple repeats within a run of
up to ~28k flows per device. Packets are written in time order. Deterministic for a
given seed and END.
"""

import argparse
import random
import struct
import sys
import time

VENDOR_PREFIXES = [
    "3c:22:fb", "a4:83:e7", "f0:18:98", "b8:27:eb", "dc:a6:32", "00:17:88", "f4:f5:d8",
    "18:b4:30", "44:65:0d", "fc:a1:83", "50:c7:bf", "b0:be:76", "00:1a:11", "ac:bc:32",
    "d8:3a:dd", "e4:5f:01", "28:6c:07", "00:04:4b", "9c:8e:cd", "70:ee:50",
]
ROUTER_MAC = bytes.fromhex("00113201aa01")
ROUTER_IP = bytes([192, 168, 1, 1])
TCP_PORTS = [443] * 10 + [80] * 3 + [8080, 22, 993, 5228, 8883, 853]
WORDS = ["cdn", "api", "mail", "img", "static", "push", "time", "update", "video", "login",
         "stats", "ads", "www", "m", "edge", "sync", "dl", "auth", "news", "chat"]
ZONES = ["example.com", "example.net", "example.org", "cloud.test", "media.test",
         "shop.test", "games.test", "iot.test"]


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


class Writer:
    def __init__(self, f):
        self.f = f
        self.ip_id = 0
        self.packets = 0
        # pcap, microsecond timestamps, Ethernet
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))

    def frame(self, ts, smac, dmac, sip, dip, l4proto, l4):
        self.ip_id = (self.ip_id + 1) & 0xFFFF
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), self.ip_id, 0x4000, 64,
                          l4proto, 0, sip, dip)
        hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
        pkt = dmac + smac + b"\x08\x00" + hdr + l4
        sec = int(ts)
        usec = int((ts - sec) * 1e6)
        self.f.write(struct.pack("<IIII", sec, usec, len(pkt), len(pkt)))
        self.f.write(pkt)
        self.packets += 1

    def tcp(self, ts, c, s, flags, seq, ack, payload=b"", from_client=True):
        (cmac, cip, cport), (smac, sip, sport) = c, s
        if from_client:
            src, dst = (cmac, cip, cport), (smac, sip, sport)
        else:
            src, dst = (smac, sip, sport), (cmac, cip, cport)
        # TCP checksum left 0: nothing downstream verifies it.
        seg = struct.pack("!HHIIBBHHH", src[2], dst[2], seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                          5 << 4, flags, 64240, 0, 0) + payload
        self.frame(ts, src[0], dst[0], src[1], dst[1], 6, seg)

    def udp(self, ts, src, dst, payload):
        seg = struct.pack("!HHHH", src[2], dst[2], 8 + len(payload), 0) + payload
        self.frame(ts, src[0], dst[0], src[1], dst[1], 17, seg)


FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def dns_name(name):
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--flows", type=int, default=1_000_000)
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--end", type=float, default=None, help="epoch seconds (default: now)")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.flows < 1 or not 1 <= a.devices <= 200:
        sys.exit("gen-flows: --flows must be >= 1 and --devices 1..200")
    rnd = random.Random(a.seed)
    end = float(int(a.end if a.end is not None else time.time()))
    start = end - a.hours * 3600
    gap = (end - start) / a.flows

    devices = []
    for i in range(a.devices):
        prefix = bytes.fromhex(VENDOR_PREFIXES[i % len(VENDOR_PREFIXES)].replace(":", ""))
        mac = prefix + bytes([0x10, i // 256, i % 256])
        devices.append([mac, bytes([192, 168, 1, 10 + i]), 32768 + rnd.randrange(1000)])
    # Device activity is skewed: a few talk a lot (weights 1/(rank+1)).
    weights = [1.0 / (r + 1) for r in range(a.devices)]
    remotes = [bytes([rnd.choice([23, 31, 52, 104, 142, 151, 172, 185, 203]), rnd.randrange(256),
                      rnd.randrange(256), 1 + rnd.randrange(254)]) for _ in range(3000)]
    names = [f"{rnd.choice(WORDS)}{rnd.randrange(40)}.{rnd.choice(ZONES)}" for _ in range(4000)]
    router = (ROUTER_MAC, ROUTER_IP)

    def next_port(d):
        p = d[2]
        d[2] = 32768 + (p - 32768 + 1) % (61000 - 32768)
        return p

    counts = {"tcp": 0, "local": 0, "s0": 0, "rej": 0, "dns": 0}
    with open(a.out, "wb", buffering=1 << 22) as f:
        w = Writer(f)
        for i in range(a.flows):
            t = start + i * gap + rnd.random() * gap * 0.2
            step = min(gap * 0.1, 0.02)  # 7 packets stay within the slot: time order holds
            dev = rnd.choices(devices, weights)[0]
            cport = next_port(dev)
            c = (dev[0], dev[1], cport)
            kind = rnd.random()
            if kind < 0.28:
                counts["dns"] += 1
                qid = rnd.randrange(65536)
                q = dns_name(rnd.choice(names)) + b"\x00\x01\x00\x01"
                query = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q
                ans = (b"\xc0\x0c\x00\x01\x00\x01" + struct.pack("!IH", 300, 4)
                       + rnd.choice(remotes))
                resp = struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + q + ans
                w.udp(t, c, (ROUTER_MAC, ROUTER_IP, 53), query)
                w.udp(t + step, (ROUTER_MAC, ROUTER_IP, 53), c, resp)
                continue
            if kind < 0.33:
                counts["local"] += 1
                peer = rnd.choice(devices)
                if peer is dev:
                    peer = devices[(devices.index(dev) + 1) % len(devices)]
                s = (peer[0], peer[1], rnd.choice([8009, 445, 1900, 80, 5000]))
            else:
                s = (router[0], rnd.choice(remotes), rnd.choice(TCP_PORTS))
            isn, rsn = rnd.randrange(1 << 32), rnd.randrange(1 << 32)
            w.tcp(t, c, s, SYN, isn, 0)
            if kind < 0.36:
                counts["s0"] += 1
                continue
            if kind < 0.38:
                counts["rej"] += 1
                w.tcp(t + step, c, s, RST | ACK, 0, isn + 1, from_client=False)
                continue
            counts["tcp"] += 1
            if s[2] in (80, 8080):
                body = rnd.choice([0, 200, 1000])
                payload = (f"GET /{rnd.choice(WORDS)}/{rnd.randrange(1000)} HTTP/1.1\r\n"
                           f"Host: {rnd.choice(names)}\r\nUser-Agent: gen-flows/1\r\n\r\n").encode()
                response = (f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                            f"Content-Length: {body}\r\n\r\n").encode() + b"x" * body
            else:
                payload = b"\x01" * rnd.randrange(60, 260)
                response = b"\0" * rnd.choice([80, 400, 1200, 1400])
            n_req, n_resp = len(payload), len(response)
            w.tcp(t + step, c, s, SYN | ACK, rsn, isn + 1, from_client=False)
            w.tcp(t + 2 * step, c, s, PSH | ACK, isn + 1, rsn + 1, payload)
            w.tcp(t + 3 * step, c, s, PSH | ACK, rsn + 1, isn + 1 + n_req, response,
                  from_client=False)
            w.tcp(t + 4 * step, c, s, FIN | ACK, isn + 1 + n_req, rsn + 1 + n_resp)
            w.tcp(t + 5 * step, c, s, FIN | ACK, rsn + 1 + n_resp, isn + 2 + n_req,
                  from_client=False)
            w.tcp(t + 6 * step, c, s, ACK, isn + 2 + n_req, rsn + 2 + n_resp)
    print(f"gen-flows: wrote {a.out}: {a.flows} flows ({', '.join(f'{k} {v}' for k, v in counts.items())}), "
          f"{w.packets} packets, {a.devices} devices, "
          f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(start))} .. "
          f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(end))}", file=sys.stderr)


if __name__ == "__main__":
    main()
