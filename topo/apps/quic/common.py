"""What the QUIC test apps (client.py, server.py) share: the ALPN, the JSON-lines output, the
usage-error exit, and the deterministic answer both sides compute for `GET n`."""
import hashlib
import json
import os
import sys

ALPN = "tmt"


def emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def fail(msg: str) -> None:
    print(f"{os.path.basename(sys.argv[0])}: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


def payload(n: int) -> bytes:
    """The answer to `GET n`: the first n bytes of SHAKE-256("tmt-quic <n>")."""
    return hashlib.shake_256(f"tmt-quic {n}".encode()).digest(n) if n else b""
