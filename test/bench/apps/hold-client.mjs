#!/usr/bin/env node
// Scale-bench client: opens many long-lived connections to the echo-server line protocol and
// keeps them open, driven one JSON command per stdin line (one JSON answer per stdout line):
//   {"op":"open","n":N,"concurrency":C,"line":"please migrate"}
//       opens N more connections, C at a time; each sends "<line> <tag>-<i>" and waits for the
//       reply "<server> <line> <tag>-<i>". Answer: ok/failed, servers, errors, elapsedMs, open.
//   {"op":"probe","window":W}
//       sends "probe <i> <round>" on every open connection (W outstanding at a time) and waits for
//       each reply. Answer: answered/failed, servers, errors, elapsedMs.
//   {"op":"close","timeoutMs":T}
//       ends every connection (client FIN first) and waits for each to close. Answer: closed,
//       unclean, elapsedMs.
//   {"op":"stats"} -> open, lost (closed or errored while held, with reasons)
// Usage: node hold-client.mjs --host 10.0.0.1 --port 5001 --tag c1 [--timeout 10000]
// Raise the fd limit before starting it (`ulimit -n`); every connection is one socket.
import { connect } from 'node:net';
import { createInterface } from 'node:readline';

const argv = process.argv.slice(2);
const opt = (k, d) => { const i = argv.indexOf(`--${k}`); return i >= 0 ? argv[i + 1] : d; };
const host = opt('host'); const port = Number(opt('port'));
const tag = opt('tag', 'c'); const timeoutMs = Number(opt('timeout', '10000'));
const now = () => Number(process.hrtime.bigint()) / 1e6;

/** Open connections: id -> { sock, server, waiter } */
const conns = new Map();
const lost = { count: 0, reasons: {} };
let nextId = 0;
let closing = false;

function loseOne(c, why) {
  if (!conns.has(c.id)) return;
  conns.delete(c.id);
  if (closing) return;
  lost.count++;
  lost.reasons[why] = (lost.reasons[why] ?? 0) + 1;
}

/** Sends `text` on c and resolves with the next reply line (rejects on timeout/close). */
function ask(c, text) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { c.waiter = undefined; reject(new Error('timeout waiting for the reply')); }, timeoutMs);
    c.waiter = { resolve: (l) => { clearTimeout(t); resolve(l); }, reject: (e) => { clearTimeout(t); reject(e); } };
    c.sock.write(text + '\n');
  });
}

function openOne(line) {
  return new Promise((resolve, reject) => {
    const id = nextId++;
    const c = { id, buf: '', waiter: undefined, server: undefined };
    const sock = connect({ host, port });
    c.sock = sock;
    sock.setNoDelay(true);
    let connected = false;
    const t = setTimeout(() => { sock.destroy(); reject(new Error('connect timeout')); }, timeoutMs);
    sock.on('data', (d) => {
      c.buf += d.toString('latin1');
      let k;
      while ((k = c.buf.indexOf('\n')) >= 0) {
        const l = c.buf.slice(0, k); c.buf = c.buf.slice(k + 1);
        const w = c.waiter; c.waiter = undefined;
        if (w) w.resolve(l);
      }
    });
    sock.on('error', (e) => { c.err = e.code ?? e.message; });
    sock.on('close', () => {
      const w = c.waiter; c.waiter = undefined;
      if (w) w.reject(new Error(`closed (${c.err ?? 'FIN'})`));
      if (c.onClose) c.onClose();
      loseOne(c, c.err ?? 'closed by peer');
      if (!connected) { clearTimeout(t); reject(new Error(`connect: ${c.err ?? 'closed'}`)); }
    });
    sock.once('connect', async () => {
      connected = true;
      clearTimeout(t);
      conns.set(id, c);
      const text = `${line} ${tag}-${id}`;
      try {
        const reply = await ask(c, text);
        c.server = reply.split(' ')[0];
        if (reply !== `${c.server} ${text}`) throw new Error(`bad reply ${JSON.stringify(reply.slice(0, 80))}`);
        resolve(c);
      } catch (e) { conns.delete(id); sock.destroy(); reject(e); }
    });
  });
}

function countErr(errs, counts, e) {
  const k = String(e.message).replace(/\d+/g, 'N');
  counts[k] = (counts[k] ?? 0) + 1;
  if (errs.length < 5) errs.push(e.message);
}

async function pool(items, conc, fn) {
  let i = 0;
  await Promise.all(Array.from({ length: Math.max(1, Math.min(conc, items.length)) }, async () => {
    while (i < items.length) await fn(items[i++]);
  }));
}

async function doOpen(c) {
  const r = { op: 'open', ok: 0, failed: 0, servers: {}, errors: [], errorCounts: {}, elapsedMs: 0 };
  const t0 = now();
  await pool(Array.from({ length: c.n }, (_, i) => i), c.concurrency ?? 8, async () => {
    try { const x = await openOne(c.line ?? 'please migrate'); r.ok++; r.servers[x.server] = (r.servers[x.server] ?? 0) + 1; } catch (e) { r.failed++; countErr(r.errors, r.errorCounts, e); }
  });
  r.elapsedMs = now() - t0;
  r.open = conns.size;
  return r;
}

let round = 0;
async function doProbe(c) {
  round++;
  const r = { op: 'probe', round, total: conns.size, answered: 0, failed: 0, servers: {}, errors: [], errorCounts: {}, elapsedMs: 0, maxMs: 0 };
  const t0 = now();
  await pool([...conns.values()], c.window ?? 200, async (x) => {
    const text = `probe ${x.id} ${round}`;
    const s = now();
    try {
      const reply = await ask(x, text);
      const server = reply.split(' ')[0];
      if (reply !== `${server} ${text}`) throw new Error(`bad reply ${JSON.stringify(reply.slice(0, 80))}`);
      r.answered++; r.servers[server] = (r.servers[server] ?? 0) + 1;
      r.maxMs = Math.max(r.maxMs, now() - s);
    } catch (e) { r.failed++; countErr(r.errors, r.errorCounts, e); }
  });
  r.elapsedMs = now() - t0;
  return r;
}

async function doClose(c) {
  closing = true;
  const t0 = now();
  const all = [...conns.values()];
  let closed = 0; let unclean = 0;
  await Promise.race([
    Promise.all(all.map((x) => new Promise((resolve) => {
      x.onClose = () => { closed++; if (x.err) unclean++; resolve(); };
      if (x.sock.destroyed) { x.onClose(); return; }
      x.sock.end();
    }))),
    new Promise((r) => setTimeout(r, c.timeoutMs ?? 60000)),
  ]);
  const r = { op: 'close', total: all.length, closed, unclean, notClosed: all.length - closed, elapsedMs: now() - t0 };
  for (const x of all) x.sock.destroy();
  return r;
}

const rl = createInterface({ input: process.stdin });
let queue = Promise.resolve();
rl.on('line', (l) => {
  queue = queue.then(async () => {
    let c;
    try { c = JSON.parse(l); } catch { return; }
    let out;
    try {
      if (c.op === 'open') out = await doOpen(c);
      else if (c.op === 'probe') out = await doProbe(c);
      else if (c.op === 'close') out = await doClose(c);
      else if (c.op === 'stats') out = { op: 'stats', open: conns.size, lost };
      else out = { op: c.op, error: 'unknown op' };
    } catch (e) { out = { op: c.op, error: e.message }; }
    out.lost = lost;
    process.stdout.write(JSON.stringify(out) + '\n');
  });
});
rl.on('close', () => { queue.then(() => process.exit(0)); });
console.log(JSON.stringify({ ready: true }));
