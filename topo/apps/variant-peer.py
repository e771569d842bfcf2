#!/usr/bin/python3
"""TCP peers for the variants suite (test/integration/tcp-variants*.test.ts), speaking the echo
server's line protocol (topo/apps/echo-server.mjs) with the socket options Node cannot set:
TCP Fast Open, IPPROTO_MPTCP, SO_LINGER 0. Standard library only; run with /usr/bin/python3.

  client --host H --port P --first LINE [--upload BYTES] [--blob N --seed S]
         [--tfo none|sendto|connect] [--mptcp] [--timeout S]
      One connection. LINE is the first thing sent: with --tfo it goes in the SYN (sendto with
      MSG_FASTOPEN, or TCP_FASTOPEN_CONNECT then send). Then BYTES of hex lines are uploaded and
      read back from the echo (both directions sha256-checked here: what was sent against what
      came back), then "BLOB N S" is read (its sha256 is printed for the test to check).
      Prints one JSON object: {ok, local, first, servers, upBytes, upSha, echoSha, blobSha, mptcp}.
  server --name NAME --port P [--mptcp]
      The echo server's line protocol ("<name> <line>", "WHO"), optionally on an MPTCP socket.
      Prints {"listening": P} once it listens.
  probe --host H --port P --count N --close fin|rst [--timeout S]
      N connections opened and closed at once, one after the other: fin (shutdown, wait for the
      server's FIN, close) or rst (SO_LINGER 0, close). Prints {ok, failed, eofs, errors, maxEofMs}.
"""
import argparse
import hashlib
import json
import os
import select
import socket
import struct
import sys
import threading
import time

IPPROTO_MPTCP = getattr(socket, 'IPPROTO_MPTCP', 262)
MSG_FASTOPEN = getattr(socket, 'MSG_FASTOPEN', 0x20000000)
TCP_FASTOPEN_CONNECT = getattr(socket, 'TCP_FASTOPEN_CONNECT', 30)
SOL_MPTCP = 284
MPTCP_INFO = 1


def new_socket(mptcp):
    return socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP if mptcp else 0)


def mptcp_active(sock):
    """Whether the connection really runs MPTCP: MPTCP_INFO answers only while it has not fallen back."""
    try:
        sock.getsockopt(SOL_MPTCP, MPTCP_INFO, 256)
        return True
    except OSError:
        return False


class Lines:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b''

    def line(self):
        while b'\n' not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError('connection closed while waiting for a line')
            self.buf += d
        i = self.buf.index(b'\n')
        out, self.buf = self.buf[:i], self.buf[i + 1:]
        return out.decode('latin1')

    def exactly(self, n):
        h = hashlib.sha256()
        got = 0
        if self.buf:
            take = self.buf[:n]
            h.update(take)
            got = len(take)
            self.buf = self.buf[len(take):]
        while got < n:
            d = self.sock.recv(min(1 << 20, n - got))
            if not d:
                raise EOFError('closed after %d of %d bytes' % (got, n))
            h.update(d)
            got += len(d)
        return h.hexdigest()


def client(a):
    s = new_socket(a.mptcp)
    s.settimeout(a.timeout)
    first = (a.first + '\n').encode()
    if a.tfo == 'sendto':
        # Without a cookie (and without 0x4 in net.ipv4.tcp_fastopen) the kernel sends a SYN with a
        # cookie request and no data: a socket with a timeout (non-blocking inside) says EINPROGRESS.
        try:
            sent = s.sendto(first, MSG_FASTOPEN, (a.host, a.port))
        except BlockingIOError:
            sent = 0
            if not select.select([], [s], [], a.timeout)[1]:
                raise TimeoutError('connect timeout')
            e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if e:
                raise OSError(e, os.strerror(e))
        s.sendall(first[sent:])
    elif a.tfo == 'connect':
        s.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1)
        s.connect((a.host, a.port))
        s.sendall(first)
    else:
        s.connect((a.host, a.port))
        s.sendall(first)
    out = {'local': '%s:%d' % s.getsockname()}
    rd = Lines(s)
    reply = rd.line()
    out['first'] = reply
    name = reply.split(' ')[0]
    servers = {name: 1}
    # Upload: hex lines, echoed back as "<server> <line>"; a reader thread keeps both directions busy.
    n_lines = (a.upload + 1023) // 1024 if a.upload else 0
    up = hashlib.sha256()
    echo = hashlib.sha256()
    err = []

    def reader():
        try:
            for _ in range(n_lines):
                l = rd.line()
                srv, _, rest = l.partition(' ')
                servers[srv] = servers.get(srv, 0) + 1
                echo.update(rest.encode() + b'\n')
        except Exception as e:  # noqa: BLE001 - reported to the test
            err.append('echo: %s' % e)

    t = threading.Thread(target=reader)
    t.start()
    seed = hashlib.sha256(str(a.seed).encode()).digest()
    for i in range(n_lines):
        seed = hashlib.sha256(seed).digest()
        line = (seed * 16).hex()[:1023].encode() + b'\n'
        up.update(line)
        try:
            s.sendall(line)
        except Exception as e:  # noqa: BLE001
            err.append('upload: %s' % e)
            break
    t.join()
    if err:
        raise RuntimeError('; '.join(err))
    out['upBytes'] = n_lines * 1024
    out['upSha'] = up.hexdigest()
    out['echoSha'] = echo.hexdigest()
    if a.blob:
        s.sendall(('BLOB %d %d\n' % (a.blob, a.seed)).encode())
        out['blobSha'] = rd.exactly(a.blob)
    out['mptcp'] = mptcp_active(s) if a.mptcp else False
    s.sendall(b'WHO\n')
    who = rd.line()
    servers[who] = servers.get(who, 0) + 1
    out['servers'] = servers
    s.shutdown(socket.SHUT_WR)
    try:
        while s.recv(65536):
            pass
    except OSError:
        pass
    s.close()
    out['ok'] = True
    return out


def server(a):
    ls = new_socket(a.mptcp)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(('0.0.0.0', a.port))
    ls.listen(128)
    print(json.dumps({'listening': a.port, 'name': a.name, 'mptcp': a.mptcp}), flush=True)

    def serve(c):
        try:
            rd = Lines(c)
            while True:
                l = rd.line()
                c.sendall((a.name if l == 'WHO' else '%s %s' % (a.name, l)).encode('latin1') + b'\n')
        except Exception:  # noqa: BLE001 - the peer went away
            pass
        finally:
            c.close()

    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def probe(a):
    res = {'ok': 0, 'failed': 0, 'eofs': 0, 'errors': [], 'maxEofMs': 0}
    for i in range(a.count):
        s = new_socket(False)
        s.settimeout(a.timeout)
        try:
            s.connect((a.host, a.port))
            if a.close == 'rst':
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            else:
                s.shutdown(socket.SHUT_WR)
                t0 = time.monotonic()
                if s.recv(1) == b'':
                    res['eofs'] += 1
                    res['maxEofMs'] = max(res['maxEofMs'], round((time.monotonic() - t0) * 1000))
            res['ok'] += 1
        except Exception as e:  # noqa: BLE001
            res['failed'] += 1
            if len(res['errors']) < 10:
                res['errors'].append('#%d: %s' % (i, e))
        finally:
            s.close()
    return res


def main():
    p = argparse.ArgumentParser()
    p.add_argument('mode', choices=['client', 'server', 'probe'])
    p.add_argument('--host', default='10.0.0.1')
    p.add_argument('--port', type=int, default=5001)
    p.add_argument('--first', default='hello')
    p.add_argument('--upload', type=int, default=0)
    p.add_argument('--blob', type=int, default=0)
    p.add_argument('--seed', type=int, default=1)
    p.add_argument('--tfo', choices=['none', 'sendto', 'connect'], default='none')
    p.add_argument('--mptcp', action='store_true')
    p.add_argument('--timeout', type=float, default=20)
    p.add_argument('--name', default='server')
    p.add_argument('--count', type=int, default=1)
    p.add_argument('--close', choices=['fin', 'rst'], default='fin')
    a = p.parse_args()
    if a.mode == 'server':
        server(a)
        return
    try:
        out = client(a) if a.mode == 'client' else probe(a)
    except Exception as e:  # noqa: BLE001 - one JSON line either way
        out = {'ok': False, 'error': '%s: %s' % (type(e).__name__, e)}
    print(json.dumps(out), flush=True)


if __name__ == '__main__':
    os.environ.setdefault('PYTHONUNBUFFERED', '1')
    main()
