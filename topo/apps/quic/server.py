#!/usr/bin/env python3
"""QUIC test server (aioquic), run with trixie's python3 inside the QUIC root (topo/quic-root.sh).

Protocol, ALPN "tmt": the client opens a bidirectional stream and sends `GET <bytes>\\n`. The server
answers `tmt <name>\\n`, then exactly <bytes> bytes of payload(<bytes>) (the first <bytes> bytes of
SHAKE-256("tmt-quic <bytes>"), so the client computes them itself), and ends the stream. The client
answers `DONE <sha256>\\n` and ends its side; the server logs the request and closes the connection.

Stdout, one JSON object per line (tests read them; nothing else is printed there):
  {"listening": PORT, "name": NAME, ...}                      once, when the socket is bound
  {"event": "cid", "conn": ODCID, "seq": N, "cid": HEX}        every connection ID it issues
  {"event": "request", "conn": ..., "bytes": N, "sha256": ..., "client_sha256": ..., "match": true,
   "peers": ["ip:port", ...]}                                   each finished request, with every client
                                                                address the connection used, in order
  {"event": "closed", "conn": ..., "peers": [...], "reason": ...}  each connection that ends

--cid-server-id HEX --cid-length N [--cid-offset K] [--cid-config-rotation R]: every connection ID
the server issues (the handshake's SCID and each NEW_CONNECTION_ID) is QUIC-LB plaintext style:
first octet = R (3 bits) | N-1 (5 bits, length self-description), the server ID at byte K, the rest
random. Written against aioquic 1.2.0 (Debian trixie); see docs/quic.md "Test peers".
"""
import argparse
import asyncio
import datetime
import hashlib
import ipaddress
import os
import sys

from common import ALPN, emit, fail, payload  # noqa: E402 (the apps' directory is on sys.path)


try:
    import aioquic
    from aioquic.asyncio import QuicConnectionProtocol, serve
    import aioquic.asyncio.server as aioquic_server
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection
    from aioquic.quic.events import ConnectionTerminated, StreamDataReceived
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
except ImportError as e:
    fail(f"cannot import aioquic ({e}): run this inside the QUIC root: bash topo/quic-root.sh exec NETNS -- python3 /opt/tmt-quic/server.py ...")

MAX_BYTES = 256 * 1024 * 1024  # the answer is built in memory


class LbCidGenerator:
    """QUIC-LB connection IDs, unencrypted (draft-ietf-quic-load-balancers, -19 to -21): a first octet of
    config rotation (3 bits) and length self-description (5 bits: the length after the first octet),
    the server ID in the clear, at least 4 random bytes. The draft puts the server ID at byte 1."""

    def __init__(self, server_id: bytes, length: int, offset: int, rotation: int):
        if not 1 <= length <= 20:
            raise ValueError(f"--cid-length {length}: a QUIC v1/v2 connection ID is 1..20 bytes")
        if not server_id:
            raise ValueError("--cid-server-id: give at least one byte (hex)")
        if offset < 1:
            raise ValueError(f"--cid-offset {offset}: byte 0 is the first octet (config rotation and length); use 1 or more")
        if offset + len(server_id) > length:
            raise ValueError(f"--cid-offset {offset} + {len(server_id)}-byte server id does not fit a {length}-byte CID")
        if length - 1 - len(server_id) < 4:
            # The draft's minimum nonce; it also keeps our CIDs unique in aioquic's CID table.
            raise ValueError(f"--cid-length {length} leaves {length - 1 - len(server_id)} random bytes; QUIC-LB needs at least 4")
        if not 0 <= rotation <= 6:
            raise ValueError(f"--cid-config-rotation {rotation}: 0..6 (7 means unroutable)")
        self.server_id, self.length, self.offset, self.rotation = server_id, length, offset, rotation

    def __call__(self) -> bytes:
        cid = bytearray(os.urandom(self.length))
        cid[0] = (self.rotation << 5) | (self.length - 1)
        cid[self.offset:self.offset + len(self.server_id)] = self.server_id
        return bytes(cid)

    def describe(self) -> dict:
        return {"server_id": self.server_id.hex(), "length": self.length, "offset": self.offset, "config_rotation": self.rotation}


class TmtServerConnection(QuicConnection):
    """aioquic's connection with our connection IDs: aioquic 1.2.0 draws host CIDs with os.urandom in
    __init__ (sequence 0, the handshake's SCID) and in _replenish_connection_ids (every CID later sent
    in NEW_CONNECTION_ID). Both are replaced here before any is sent, and each one is logged."""

    new_cid = staticmethod(lambda: os.urandom(8))

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        first = self._host_cids[0]
        first.cid = self.new_cid()
        self.host_cid = first.cid
        self._local_initial_source_connection_id = first.cid
        self._log_cid(first)

    def _replenish_connection_ids(self) -> None:
        start = self._host_cid_seq
        super()._replenish_connection_ids()
        for c in self._host_cids:
            if c.sequence_number >= start and not c.was_sent:
                c.cid = self.new_cid()
                self._log_cid(c)

    def _log_cid(self, c) -> None:
        emit({"event": "cid", "conn": self.original_destination_connection_id.hex(), "seq": c.sequence_number, "cid": c.cid.hex()})


def check_aioquic() -> None:
    """The CID hook relies on aioquic internals: fail clearly rather than issue random CIDs."""
    needed = ("_replenish_connection_ids",)
    if not all(hasattr(QuicConnection, n) for n in needed) or not hasattr(aioquic_server, "QuicConnection"):
        fail(f"aioquic {aioquic.__version__} lacks the internals the CID generator hooks (written for 1.2.0): see docs/quic.md")


def fmt_addr(addr) -> str:
    host, port = addr[0], addr[1]
    if host.startswith("::ffff:"):
        host = host[7:]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class TmtServerProtocol(QuicConnectionProtocol):
    name = "server"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.peers: list = []
        self.requests: dict = {}  # stream id -> {"buf", "bytes", "sha256", "reply"}
        self.conn = self._quic.original_destination_connection_id.hex()

    def datagram_received(self, data, addr) -> None:
        a = fmt_addr(addr)
        if a not in self.peers:
            self.peers.append(a)
        super().datagram_received(data, addr)

    def quic_event_received(self, event) -> None:
        if isinstance(event, StreamDataReceived):
            self.on_stream_data(event)
        elif isinstance(event, ConnectionTerminated):
            emit({"event": "closed", "name": self.name, "conn": self.conn, "peers": self.peers,
                  "error_code": event.error_code, "reason": event.reason_phrase})

    def on_stream_data(self, event: StreamDataReceived) -> None:
        req = self.requests.setdefault(event.stream_id, {"buf": b"", "bytes": None})
        req["buf"] += event.data
        if req["bytes"] is None and b"\n" in req["buf"]:
            line, req["buf"] = req["buf"].split(b"\n", 1)
            parts = line.decode("ascii", "replace").split()
            if len(parts) != 2 or parts[0] != "GET" or not parts[1].isdigit() or int(parts[1]) > MAX_BYTES:
                emit({"event": "bad_request", "name": self.name, "conn": self.conn, "line": line[:100].decode("ascii", "replace")})
                self._quic.close(error_code=0x100, reason_phrase="bad request: want 'GET <bytes>'")
                self.transmit()
                return
            n = int(parts[1])
            data = payload(n)
            req["bytes"], req["sha256"] = n, hashlib.sha256(data).hexdigest()
            self._quic.send_stream_data(event.stream_id, f"tmt {self.name}\n".encode() + data, end_stream=True)
            self.transmit()
        if event.end_stream and req["bytes"] is not None:
            parts = req["buf"].decode("ascii", "replace").split()
            client_sha = parts[1] if len(parts) == 2 and parts[0] == "DONE" else None
            emit({"event": "request", "name": self.name, "conn": self.conn, "stream": event.stream_id, "bytes": req["bytes"],
                  "sha256": req["sha256"], "client_sha256": client_sha, "match": client_sha == req["sha256"], "peers": self.peers})
            del self.requests[event.stream_id]
            # One request per connection: closing here tells the client its DONE arrived.
            self._quic.close(reason_phrase="done")
            self.transmit()


def self_signed(name: str):
    """A throwaway certificate for this run (clients do not verify it; no key is ever written)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def parse_args():
    p = argparse.ArgumentParser(description="QUIC test server (see the module docstring)")
    p.add_argument("--name", default="server", help="reported to clients and in every log line")
    p.add_argument("--host", default="0.0.0.0", help="address to bind (default all)")
    p.add_argument("--port", type=int, default=4433, help="UDP port (0: any free one, see the 'listening' line)")
    p.add_argument("--cid-server-id", metavar="HEX", help="QUIC-LB server id to put in every issued connection ID")
    p.add_argument("--cid-length", type=int, metavar="N", help="length of issued connection IDs (default 8)")
    p.add_argument("--cid-offset", type=int, default=1, metavar="K", help="byte offset of the server id (default 1, the draft's)")
    p.add_argument("--cid-config-rotation", type=int, default=0, metavar="R", help="config rotation bits, 0..6 (default 0)")
    a = p.parse_args()
    if not 0 <= a.port <= 65535:
        p.error(f"--port {a.port}: 0..65535")
    try:
        ipaddress.ip_address(a.host)
    except ValueError:
        p.error(f"--host {a.host!r}: give an IP address")
    if not a.name or any(c.isspace() for c in a.name):
        p.error("--name: a non-empty word without spaces")
    if a.cid_server_id is not None:
        try:
            sid = bytes.fromhex(a.cid_server_id)
        except ValueError:
            p.error(f"--cid-server-id {a.cid_server_id!r}: not hex")
        try:
            a.generator = LbCidGenerator(sid, a.cid_length or 8, a.cid_offset, a.cid_config_rotation)
        except ValueError as e:
            p.error(str(e))
    else:
        if a.cid_length is not None and not 1 <= a.cid_length <= 20:
            p.error(f"--cid-length {a.cid_length}: 1..20")
        a.generator = None
    return a


async def main() -> None:
    a = parse_args()
    check_aioquic()
    length = a.generator.length if a.generator else (a.cid_length or 8)
    TmtServerConnection.new_cid = staticmethod(a.generator or (lambda: os.urandom(length)))
    # aioquic's QuicServer builds each connection from this module-level name.
    aioquic_server.QuicConnection = TmtServerConnection
    TmtServerProtocol.name = a.name

    cert, key = self_signed(a.name)
    config = QuicConfiguration(is_client=False, alpn_protocols=[ALPN], connection_id_length=length,
                               certificate=cert, private_key=key, max_datagram_frame_size=None)
    server = await serve(a.host, a.port, configuration=config, create_protocol=TmtServerProtocol)
    port = server._transport.get_extra_info("sockname")[1]
    emit({"listening": port, "name": a.name, "host": a.host, "aioquic": aioquic.__version__,
          "cid": a.generator.describe() if a.generator else {"length": length}})
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
