#!/usr/bin/env node
// Demo/test backend: a line protocol that says which server answered.
//   any line L        -> "<name> L"
//   "BLOB <n> <seed>" -> n bytes of a deterministic stream (same on every server for the same seed)
//   "WHO"             -> "<name>"
// Usage: echo-server.mjs --name server1 --port 5001 [--host 0.0.0.0] [--banner]
//   --banner: server speaks first; every new connection gets "<name> ready" before any request.
//   SIGUSR2: writes "<name> unsolicited" to every open connection (tests: a server that talks
//   after a connection has left it).
import { createServer } from 'node:net';
import { blobChunk } from './blob.mjs';

const args = Object.fromEntries(process.argv.slice(2).reduce((a, v, i, all) => (v.startsWith('--') ? [...a, [v.slice(2), all[i + 1]]] : a), []));
const name = args.name ?? 'server';
const port = Number(args.port ?? 5001);

const banner = 'banner' in args;
const open = new Set();

const server = createServer((sock) => {
  let buf = '';
  let busy = Promise.resolve();
  sock.on('error', () => {});
  open.add(sock);
  sock.on('close', () => open.delete(sock));
  if (banner) sock.write(`${name} ready\n`);
  sock.on('data', (d) => {
    buf += d.toString('latin1');
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      busy = busy.then(() => handle(sock, line));
    }
  });
});

async function handle(sock, line) {
  const m = /^BLOB (\d+) (\d+)$/.exec(line);
  if (m) {
    let left = Number(m[1]);
    let off = 0;
    while (left > 0) {
      const chunk = blobChunk(Number(m[2]), off, Math.min(left, 1 << 20));
      off += chunk.length;
      left -= chunk.length;
      if (!sock.write(chunk)) await new Promise((r) => sock.once('drain', r));
    }
    return;
  }
  sock.write(line === 'WHO' ? `${name}\n` : `${name} ${line}\n`);
}

server.listen(port, args.host ?? '0.0.0.0', () => console.log(JSON.stringify({ listening: port, name })));
process.on('SIGTERM', () => process.exit(0));
process.on('SIGUSR2', () => { for (const sock of open) sock.write(`${name} unsolicited\n`); });
