#!/usr/bin/env node
// Benchmark client for the echo-server line protocol: N connections, C at a time. Each opens,
// sends "<line> <i>\n", reads the reply line, closes (client first), and waits for the close.
// Prints one JSON summary; with --records also every connection's timestamps, taken from
// CLOCK_MONOTONIC (process.hrtime) in ms, so they compare with the controller's own clock.
//   node bench-client.mjs --host 10.0.0.1 --port 5001 --n 500 [--concurrency 1] [--line hello]
//                         [--timeout 5000] [--records]
import { connect } from 'node:net';

const argv = process.argv.slice(2);
const opt = (k, d) => { const i = argv.indexOf(`--${k}`); return i >= 0 ? argv[i + 1] : d; };
const host = opt('host'); const port = Number(opt('port'));
const n = Number(opt('n', '100')); const conc = Number(opt('concurrency', '1'));
const line = opt('line', 'hello'); const timeoutMs = Number(opt('timeout', '5000'));
const withRecords = argv.includes('--records');
const now = () => Number(process.hrtime.bigint()) / 1e6;

function one(i) {
  return new Promise((resolve, reject) => {
    const r = { i, t0: now() };
    const sock = connect({ host, port });
    let buf = '';
    let done = false;
    const t = setTimeout(() => { fail(new Error(`timeout (${r.tReply ? 'closing' : r.tFirst ? 'reply' : r.tConn ? 'first byte' : 'connect'})`)); }, timeoutMs);
    const fail = (e) => { if (done) return; done = true; clearTimeout(t); sock.destroy(); reject(e); };
    sock.setNoDelay(true);
    sock.once('connect', () => { r.tConn = now(); r.port = sock.localPort; sock.write(`${line} ${i}\n`); r.tWrite = now(); });
    sock.on('data', (d) => {
      if (r.tFirst === undefined) r.tFirst = now();
      buf += d.toString('latin1');
      const k = buf.indexOf('\n');
      if (k >= 0 && r.tReply === undefined) {
        r.tReply = now();
        const reply = buf.slice(0, k);
        r.server = reply.split(' ')[0];
        if (reply !== `${r.server} ${line} ${i}`) { fail(new Error(`bad reply ${JSON.stringify(reply)}`)); return; }
        sock.end();
      }
    });
    sock.on('error', (e) => fail(e));
    sock.on('close', () => {
      if (done) return;
      if (r.tReply === undefined) { fail(new Error('closed before the reply')); return; }
      done = true; clearTimeout(t); r.tClosed = now(); resolve(r);
    });
  });
}

const summary = { total: n, ok: 0, failed: 0, servers: {}, errors: [], elapsedMs: 0, ratePerSec: 0 };
const records = [];
let next = 0;
const start = now();
async function worker() {
  while (next < n) {
    const i = next++;
    try {
      const r = await one(i);
      summary.ok++;
      summary.servers[r.server] = (summary.servers[r.server] ?? 0) + 1;
      if (withRecords) records.push(r);
    } catch (e) {
      summary.failed++;
      if (summary.errors.length < 10) summary.errors.push(`#${i}: ${e.message}`);
    }
  }
}
await Promise.all(Array.from({ length: Math.max(1, conc) }, worker));
summary.elapsedMs = now() - start;
summary.ratePerSec = summary.ok / (summary.elapsedMs / 1000);
if (withRecords) summary.records = records;
console.log(JSON.stringify(summary));
