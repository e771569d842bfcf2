#!/usr/bin/env python3
"""QUIC test client (aioquic), run with trixie's python3 inside the QUIC root (topo/quic-root.sh).

Downloads N bytes from server.py (ALPN "tmt": `GET N\\n`, answer `tmt <name>\\n` + payload(N)),
checks their sha256 against payload(N) computed here, answers `DONE <sha256>\\n`, waits for the
server to close, and prints one JSON summary line on stdout. Exit 0 only if every byte matched.

Mid-transfer, once the given number of payload bytes has arrived:
  --rebind-after B        continue from a new UDP socket on the same address (a new source port:
                          NAT rebinding as the server sees it; the connection ID stays)
  --migrate-after B --new-address IP
                          continue from a socket bound to IP (another address of this host),
                          with the next connection ID as RFC 9000 §9.5 asks
  --rotate-cid-after B    switch to the server's next connection ID (change_connection_id)
After a socket change the client sends a PING at once, as a client behind a NAT would keep sending
ACKs: otherwise nothing would reach the server from the new port while its data goes to the old one.
The first datagram from the new socket carries the connection ID the new path uses (the next one after
--migrate-after, the current one after --rebind-after): see switch() in exchange().
"""
import argparse
import asyncio
import hashlib
import ipaddress
import socket
import ssl
import sys
import time

from common import ALPN, emit, fail, payload  # noqa: E402 (the apps' directory is on sys.path)


try:
    import aioquic
    from aioquic.asyncio import QuicConnectionProtocol
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection
    from aioquic.quic.events import ConnectionTerminated, HandshakeCompleted, StreamDataReceived
    from aioquic.quic.packet import QuicProtocolVersion
except ImportError as e:
    fail(f"cannot import aioquic ({e}): run this inside the QUIC root: bash topo/quic-root.sh exec NETNS -- python3 /opt/tmt-quic/client.py ...")

VERSIONS = {"1": QuicProtocolVersion.VERSION_1, "2": QuicProtocolVersion.VERSION_2}


class FirstDatagramTransport:
    """A datagram transport that reports the first datagram sent through it (then just passes on)."""

    def __init__(self, transport, on_first):
        self._transport = transport
        self._on_first = on_first

    def sendto(self, data, addr=None) -> None:
        if self._on_first is not None:
            on_first, self._on_first = self._on_first, None
            on_first(data)
        self._transport.sendto(data, addr)

    def __getattr__(self, name):
        return getattr(self._transport, name)


class TmtClientProtocol(QuicConnectionProtocol):
    def __init__(self, *args, thresholds=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.stream_id = None
        self.head = b""
        self.server_name = None
        self.received = 0
        self.sha = hashlib.sha256()
        self.thresholds = sorted(thresholds)  # (payload bytes, action)
        self.queue: asyncio.Queue = asyncio.Queue()
        self.handshake_done = False
        self.cids_seen: dict = {}  # server CID hex -> sequence number
        self.cids_used: list = []  # DCIDs this client sent to, in order
        self.first_dcids: list = []  # the DCID of the first datagram sent from each socket, in order

    def connection_made(self, transport) -> None:
        super().connection_made(FirstDatagramTransport(transport, self.note_first_dcid))

    def note_first_dcid(self, data: bytes) -> None:
        if data[0] & 0x80:  # long header: version (4 bytes), then the DCID's length and the DCID
            dcid = data[6:6 + data[5]]
        else:  # short header: the DCID right after the first byte, as long as the server's CIDs
            dcid = data[1:1 + len(self._quic._peer_cid.cid)]
        self.first_dcids.append(dcid.hex())

    def note_cids(self) -> None:
        # aioquic has no event for the peer's CIDs: read its private _peer_cid / _peer_cid_available (1.2.0).
        if not self.handshake_done:
            return
        q = self._quic
        for c in [q._peer_cid, *q._peer_cid_available]:
            if c.sequence_number is not None:
                self.cids_seen.setdefault(c.cid.hex(), c.sequence_number)
        cur = q._peer_cid.cid.hex()
        if not self.cids_used or self.cids_used[-1] != cur:
            self.cids_used.append(cur)

    def quic_event_received(self, event) -> None:
        if isinstance(event, HandshakeCompleted):
            self.handshake_done = True
        elif isinstance(event, StreamDataReceived) and event.stream_id == self.stream_id:
            self.on_data(event.data, event.end_stream)
        elif isinstance(event, ConnectionTerminated):
            self.queue.put_nowait(("closed", event))
        self.note_cids()

    def on_data(self, data: bytes, end: bool) -> None:
        if self.server_name is None:
            self.head += data
            if b"\n" not in self.head:
                if len(self.head) > 256:
                    self.queue.put_nowait(("error", "no 'tmt <name>' line from the server"))
                return
            line, data = self.head.split(b"\n", 1)
            parts = line.decode("ascii", "replace").split()
            if len(parts) != 2 or parts[0] != "tmt":
                self.queue.put_nowait(("error", f"bad first line from the server: {line[:80]!r}"))
                return
            self.server_name = parts[1]
        self.received += len(data)
        self.sha.update(data)
        while self.thresholds and self.received >= self.thresholds[0][0]:
            self.queue.put_nowait(("action", self.thresholds.pop(0)[1]))
        if end:
            self.queue.put_nowait(("end", None))


def parse_hostport(s: str):
    host, sep, port = s.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--server {s!r}: want HOST:PORT (IPv6: [ADDR]:PORT)")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"--server {s!r}: HOST must be an IP address")
    return str(ip), int(port), socket.AF_INET6 if ip.version == 6 else socket.AF_INET


def fmt(addr) -> str:
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"


def bound_socket(family: int, local: str, port: int = 0) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind((local, port))
    except OSError as e:
        sock.close()
        raise RuntimeError(f"cannot bind a UDP socket to {local}: {e} (is the address on an interface of this host?)")
    return sock


def parse_args():
    p = argparse.ArgumentParser(description="QUIC test client (see the module docstring)")
    p.add_argument("--server", required=True, metavar="HOST:PORT")
    p.add_argument("--bytes", type=int, required=True, metavar="N", help="payload bytes to download")
    p.add_argument("--sni", help="TLS server name (default: none)")
    p.add_argument("--local-address", metavar="IP", help="address to send from at first (default: the route's)")
    p.add_argument("--local-port", type=int, default=0, metavar="P",
                   help="UDP port to send from at first (default 0: any); distinct 4-tuples for many clients in a row")
    p.add_argument("--rebind-after", type=int, metavar="B")
    p.add_argument("--migrate-after", type=int, metavar="B")
    p.add_argument("--new-address", metavar="IP")
    p.add_argument("--rotate-cid-after", type=int, metavar="B")
    p.add_argument("--quic-version", choices=sorted(VERSIONS), default="1")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds for the whole exchange (default 30)")
    a = p.parse_args()
    try:
        a.host, a.port, a.family = parse_hostport(a.server)
    except ValueError as e:
        p.error(str(e))
    if not 0 <= a.bytes <= 256 * 1024 * 1024:
        p.error(f"--bytes {a.bytes}: 0..268435456 (the server builds its answer in memory)")
    if (a.migrate_after is None) != (a.new_address is None):
        p.error("--migrate-after and --new-address go together")
    for name in ("local_address", "new_address"):
        v = getattr(a, name)
        if v is not None:
            try:
                ip = ipaddress.ip_address(v)
            except ValueError:
                p.error(f"--{name.replace('_', '-')} {v!r}: not an IP address")
            if (ip.version == 6) != (a.family == socket.AF_INET6):
                p.error(f"--{name.replace('_', '-')} {v}: not the server's address family")
    for name in ("rebind_after", "migrate_after", "rotate_cid_after"):
        v = getattr(a, name)
        if v is not None and not 0 <= v < max(a.bytes, 1):
            p.error(f"--{name.replace('_', '-')} {v}: must be below --bytes ({a.bytes}) to happen mid-transfer")
    if a.timeout <= 0:
        p.error("--timeout: seconds > 0")
    if not 0 <= a.local_port <= 65535:
        p.error(f"--local-port {a.local_port}: 0..65535")
    return a


async def exchange(a, st: dict) -> None:
    loop = asyncio.get_running_loop()
    config = QuicConfiguration(is_client=True, alpn_protocols=[ALPN], server_name=a.sni, verify_mode=ssl.CERT_NONE,
                               supported_versions=[VERSIONS[a.quic_version]], idle_timeout=max(a.timeout, 10.0))
    thresholds = [(v, n) for v, n in ((a.rebind_after, "rebind"), (a.migrate_after, "migrate"), (a.rotate_cid_after, "rotate_cid")) if v is not None]
    quic = QuicConnection(configuration=config)
    local = a.local_address or ("::" if a.family == socket.AF_INET6 else "0.0.0.0")
    _, proto = await loop.create_datagram_endpoint(lambda: TmtClientProtocol(quic, thresholds=thresholds), sock=bound_socket(a.family, local, a.local_port))
    st["proto"] = proto
    server = (a.host, a.port)

    def note_local():
        # A socket bound to the wildcard learns its source address from the route only once connected.
        sock = proto._transport.get_extra_info("socket")
        name = sock.getsockname()
        if name[0] in ("0.0.0.0", "::"):
            probe = socket.socket(a.family, socket.SOCK_DGRAM)
            try:
                probe.connect(server)
                name = (probe.getsockname()[0], name[1])
            finally:
                probe.close()
        st["addresses"].append(fmt(name))

    note_local()
    proto.connect(server)
    await proto.wait_connected()
    st["version"] = {v: k for k, v in VERSIONS.items()}.get(quic._version, hex(quic._version or 0))
    proto.stream_id = quic.get_next_available_stream_id()
    quic.send_stream_data(proto.stream_id, f"GET {a.bytes}\n".encode())
    proto.transmit()

    async def switch(local_ip: str, new_cid: bool) -> None:
        # The new socket must send nothing before the connection ID it is meant to use is in place:
        # RFC 9000 §9.5, a CID is not used from more than one local address. create_datagram_endpoint
        # yields to the event loop, and a protocol passed to it is connected before the await returns
        # (connection_made sets proto._transport); in that window aioquic's ACK timer, or a datagram
        # still read from the old socket, would transmit through the new socket with the old CID, and
        # a load balancer then rightly sees the connection's known CID from a new address (a NAT
        # rebinding) instead of an address change with a new CID. So the socket is set up with a
        # protocol of its own (nothing can arrive for us there: the server has not seen the address),
        # and from the await's end to the PING's transmit nothing yields: the old socket is closed
        # (no more reading; proto no longer sends through it), the CID changed, the new socket given
        # to proto, the PING sent.
        new, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, sock=bound_socket(a.family, local_ip))
        old = proto._transport
        old.close()
        if new_cid:
            quic.change_connection_id()
        new.set_protocol(proto)
        proto.connection_made(new)
        note_local()
        quic.send_ping(0)
        proto.transmit()

    while True:
        kind, arg = await proto.queue.get()
        if kind == "action":
            st["actions"].append({"action": arg, "at_bytes": proto.received})
            if arg == "rebind":
                await switch(st["addresses"][-1].rsplit(":", 1)[0].strip("[]"), new_cid=False)
            elif arg == "migrate":
                await switch(a.new_address, new_cid=True)
            elif arg == "rotate_cid":
                before = quic._peer_cid.cid
                quic.change_connection_id()
                proto.transmit()
                if quic._peer_cid.cid == before:
                    raise RuntimeError("change_connection_id: the server has issued no spare connection ID")
            proto.note_cids()
        elif kind == "end":
            break
        elif kind == "error":
            raise RuntimeError(arg)
        elif kind == "closed":
            raise RuntimeError(f"connection closed before the end of the data: error {arg.error_code} {arg.reason_phrase!r}")

    st["server"] = proto.server_name
    st["received"] = proto.received
    st["sha256"] = proto.sha.hexdigest()
    quic.send_stream_data(proto.stream_id, f"DONE {st['sha256']}\n".encode(), end_stream=True)
    proto.transmit()
    # The server closes once it has our DONE: that close is the proof it logged the request.
    while True:
        kind, arg = await proto.queue.get()
        if kind == "closed":
            st["server_closed"] = arg.error_code == 0 and arg.reason_phrase == "done"
            break


async def main() -> int:
    a = parse_args()
    st = {"server": None, "version": None, "received": 0, "sha256": None, "addresses": [], "actions": [], "server_closed": False}
    expected = hashlib.sha256(payload(a.bytes)).hexdigest()
    t0 = time.monotonic()
    error = None
    try:
        await asyncio.wait_for(exchange(a, st), a.timeout)
    except asyncio.TimeoutError:
        error = f"timeout after {a.timeout:g} s"
    except (RuntimeError, OSError, ConnectionError) as e:
        error = str(e) or type(e).__name__
    proto = st.get("proto")
    if proto is not None:
        proto.note_cids()
        if error is not None:
            proto.close()
        received = proto.received
    else:
        received = 0
    ok = error is None and received == a.bytes and st["sha256"] == expected
    if error is None and not ok:
        error = f"got {received} bytes with sha256 {st['sha256']}, expected {a.bytes} bytes with {expected}"
    emit({"ok": ok, "error": error, "server": st["server"], "version": st["version"], "bytes": received, "sha256": st["sha256"],
          "expected_sha256": expected, "elapsed": round(time.monotonic() - t0, 3), "addresses": st["addresses"],
          "cids_used": proto.cids_used if proto else [], "first_dcids": proto.first_dcids if proto else [],
          "cids_seen": [{"seq": s, "cid": c} for c, s in sorted(proto.cids_seen.items(), key=lambda kv: kv[1])] if proto else [],
          "actions": st["actions"], "server_closed": st["server_closed"], "aioquic": aioquic.__version__})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
