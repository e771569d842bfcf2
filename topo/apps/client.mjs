#!/usr/bin/env node
// Demo/test client for the echo-server line protocol.
//   --script: JSON commands on stdin, one JSON result per line on stdout:
//     {"op":"connect","host":"10.0.0.1","port":5001}   -> {"ok":true,"local":"ip:port"}
//     {"op":"send","line":"hello"}                       -> {"ok":true,"reply":"server1 hello"}
//     {"op":"read"}                                      -> {"ok":true,"reply":"server1 ready"} (next line, nothing sent)
//     {"op":"blob","n":1000,"seed":1}                    -> {"ok":true,"bytes":n,"sha256":"..."}
//     {"op":"close"}                                     -> {"ok":true}
//   and a pool of connections held open together (drills: they must all survive an event):
//     {"op":"openMany","n":20,"host":"10.0.0.1","port":5001}  -> {"ok":true,"locals":["ip:port",...]}
//     {"op":"round","tag":"t","lines":3}  -> every pooled connection sends `<tag> <i> <k>` for k < lines
//        back to back and must read exactly `<server> <tag> <i> <k>` in order, from one server:
//        {"ok":true,"servers":{"server2":20},"errors":[]} (ok false if any reply is missing or wrong)
//     {"op":"round",...,"async":true} -> {"ok":true} at once; {"op":"awaitRound"} -> that round's result
//     {"op":"closeMany"}                                 -> {"ok":true}
//   --many N --host H --port P [--timeout ms]: N sequential connections, each sends
//     "hello <i>" and "again <i>" and reads both replies; prints one JSON summary.
import { connect } from 'node:net';
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';

const argv = process.argv.slice(2);
const opt = (k, d) => { const i = argv.indexOf(`--${k}`); return i >= 0 ? argv[i + 1] : d; };
const timeoutMs = Number(opt('timeout', '5000'));

class Conn {
  constructor(sock) {
    this.sock = sock; this.buf = Buffer.alloc(0); this.waiters = []; this.closed = false;
    sock.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this.wake(); });
    sock.on('close', () => { this.closed = true; this.wake(); });
    sock.on('error', (e) => { this.error = e; this.closed = true; this.wake(); });
  }
  wake() { const w = this.waiters; this.waiters = []; w.forEach((f) => f()); }
  async wait(pred, what) {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (this.closed) throw new Error(`connection closed while waiting for ${what}${this.error ? ': ' + this.error.message : ''}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for ${what}`);
      await new Promise((r) => { const t = setTimeout(r, left); this.waiters.push(() => { clearTimeout(t); r(); }); });
    }
  }
  async line() {
    await this.wait(() => this.buf.includes(10), 'a reply line');
    const i = this.buf.indexOf(10);
    const l = this.buf.subarray(0, i).toString();
    this.buf = this.buf.subarray(i + 1);
    return l;
  }
  async blob(n) {
    const h = createHash('sha256');
    let got = 0;
    const deadline = () => Date.now() + timeoutMs;
    let until = deadline();
    while (got < n) {
      if (this.buf.length === 0) {
        if (this.closed) throw new Error(`closed after ${got} of ${n} bytes`);
        if (Date.now() > until) throw new Error(`stalled after ${got} of ${n} bytes`);
        await new Promise((r) => { const t = setTimeout(r, 100); this.waiters.push(() => { clearTimeout(t); r(); }); });
        continue;
      }
      const take = this.buf.subarray(0, Math.min(this.buf.length, n - got));
      h.update(take); got += take.length; this.buf = this.buf.subarray(take.length); until = deadline();
    }
    return h.digest('hex');
  }
}

function open(host, port) {
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port });
    const t = setTimeout(() => { sock.destroy(); reject(new Error('connect timeout')); }, timeoutMs);
    sock.once('connect', () => { clearTimeout(t); resolve(new Conn(sock)); });
    sock.once('error', (e) => { clearTimeout(t); reject(e); });
  });
}

async function round(pool, tag, lines) {
  const servers = {};
  const errors = [];
  await Promise.all(pool.map(async (c, i) => {
    try {
      let server;
      c.sock.write(Array.from({ length: lines }, (_, k) => `${tag} ${i} ${k}\n`).join(''));
      for (let k = 0; k < lines; k++) {
        const l = await c.line();
        const name = l.split(' ')[0];
        if (l !== `${name} ${tag} ${i} ${k}` || (server && name !== server)) throw new Error(`reply ${k}: ${JSON.stringify(l)}`);
        server = name;
      }
      servers[server] = (servers[server] ?? 0) + 1;
    } catch (e) { errors.push(`#${i} ${c.sock.localPort}: ${e.message}`); }
  }));
  return { ok: errors.length === 0, servers, errors };
}

async function script() {
  let c;
  let pool = [];
  let pending;
  const rl = createInterface({ input: process.stdin });
  for await (const l of rl) {
    if (!l.trim()) continue;
    let cmd;
    try { cmd = JSON.parse(l); } catch { console.log(JSON.stringify({ ok: false, error: 'bad json' })); continue; }
    try {
      if (cmd.op === 'connect') { c = await open(cmd.host, cmd.port); console.log(JSON.stringify({ ok: true, local: `${c.sock.localAddress}:${c.sock.localPort}` })); }
      else if (cmd.op === 'send') { c.sock.write(cmd.line + '\n'); console.log(JSON.stringify({ ok: true, reply: await c.line() })); }
      else if (cmd.op === 'read') console.log(JSON.stringify({ ok: true, reply: await c.line() }));
      else if (cmd.op === 'blob') { c.sock.write(`BLOB ${cmd.n} ${cmd.seed}\n`); console.log(JSON.stringify({ ok: true, bytes: cmd.n, sha256: await c.blob(cmd.n) })); }
      else if (cmd.op === 'openMany') {
        pool = [];
        for (let i = 0; i < cmd.n; i++) pool.push(await open(cmd.host, cmd.port));
        console.log(JSON.stringify({ ok: true, locals: pool.map((p) => `${p.sock.localAddress}:${p.sock.localPort}`) }));
      }
      else if (cmd.op === 'round' && cmd.async) { pending = round(pool, cmd.tag, cmd.lines ?? 1); console.log(JSON.stringify({ ok: true })); }
      else if (cmd.op === 'round') console.log(JSON.stringify(await round(pool, cmd.tag, cmd.lines ?? 1)));
      else if (cmd.op === 'awaitRound') console.log(JSON.stringify(pending ? await pending : { ok: false, error: 'no round pending' }));
      else if (cmd.op === 'closeMany') {
        for (const p of pool) p.sock.end();
        await Promise.all(pool.map((p) => p.wait(() => p.closed, 'close').catch(() => {})));
        pool = [];
        console.log(JSON.stringify({ ok: true }));
      }
      else if (cmd.op === 'close') { c.sock.end(); await c.wait(() => c.closed, 'close').catch(() => {}); console.log(JSON.stringify({ ok: true })); }
      else console.log(JSON.stringify({ ok: false, error: `unknown op ${cmd.op}` }));
    } catch (e) { console.log(JSON.stringify({ ok: false, error: e.message })); }
  }
}

async function many() {
  const n = Number(opt('many')); const host = opt('host'); const port = Number(opt('port'));
  const summary = { total: n, ok: 0, failed: 0, servers: {}, errors: [] };
  for (let i = 0; i < n; i++) {
    try {
      const c = await open(host, port);
      c.sock.write(`hello ${i}\n`);
      const a = await c.line();
      c.sock.write(`again ${i}\n`);
      const b = await c.line();
      const [sa, sb] = [a.split(' ')[0], b.split(' ')[0]];
      if (a !== `${sa} hello ${i}` || b !== `${sb} again ${i}` || sa !== sb) throw new Error(`bad replies ${JSON.stringify([a, b])}`);
      summary.servers[sa] = (summary.servers[sa] ?? 0) + 1;
      c.sock.end();
      // A close that never completes (the server's FIN never arrives) must not keep this process
      // alive for ever: counted, and the socket dropped.
      await c.wait(() => c.closed, 'close').catch(() => { summary.closeTimeouts = (summary.closeTimeouts ?? 0) + 1; c.sock.destroy(); });
      summary.ok++;
    } catch (e) {
      summary.failed++;
      if (summary.errors.length < 10) summary.errors.push(`#${i}: ${e.message}`);
    }
  }
  console.log(JSON.stringify(summary));
}

if (argv.includes('--script')) await script();
else if (argv.includes('--many')) await many();
else { console.error('usage: client.mjs --script | --many N --host H --port P'); process.exit(2); }
