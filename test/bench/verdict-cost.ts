// The controller's own synchronous work from a MIGRATE verdict (the speculative leg already
// answered) to the end of that call: the ACK, the flows, the barrier and the release, every message
// encoded as the real channel does. In-process, on the scripted switch: no OVS, no scheduling.
//
//   npx tsx test/bench/verdict-cost.ts [--n 3000]
//
// Prints one line; nothing is written. docs/benchmarks.md quotes it beside trace-handoff.ts.
import { parseArgs } from 'node:util';
import { EngineBed, CLIENT, S1, S2, SYN_OPTIONS } from '../lib/scripted-switch.ts';
import { encodeMessage, type OfpMessage } from '../../controller/openflow/index.ts';
import { INTERCEPT_ROLE, interceptCookie } from '../../controller/cookies.ts';
import { endpointKey } from '../../controller/handoff/connection.ts';
import { median, quantile } from './lib/util.ts';

const { values: a } = parseArgs({ options: { n: { type: 'string', default: '3000' } } });
const N = Number(a.n);
if (!(N >= 100)) { console.error('usage: verdict-cost.ts [--n N ≥ 100]'); process.exit(2); }
const ISN = 1000; const S1_ISN = 5000; const S2_ISN = 90000;
const tick = () => new Promise((r) => setImmediate(r));

const bed = await EngineBed.create({ service: { speculativeReplay: true }, opts: { maxConnections: N + 10 } });
const sw = bed.sw as unknown as { send: (m: OfpMessage) => unknown };
const send = sw.send.bind(sw);
let encodingNs = 0;
sw.send = (m) => { const t = process.hrtime.bigint(); encodeMessage(m); encodingNs += Number(process.hrtime.bigint() - t); return send(m); };
const total: number[] = []; const encoding: number[] = [];
for (let i = 0; i < N; i++) {
  const c = { ...CLIENT, port: 20000 + i };
  bed.from(c, S1, { flags: { syn: true }, seq: ISN, options: SYN_OPTIONS });
  bed.from(S1, c, { flags: { syn: true, ack: true }, seq: S1_ISN, ack: ISN + 1, options: SYN_OPTIONS });
  await tick();
  bed.from(S2, c, { flags: { syn: true, ack: true }, seq: S2_ISN, ack: ISN + 1, options: SYN_OPTIONS });
  bed.from(c, S1, { flags: { ack: true }, seq: ISN + 1, ack: S1_ISN + 1 });
  bed.from(c, S1, { flags: { ack: true, psh: true }, seq: ISN + 1, ack: S1_ISN + 1, payload: 'hello' });
  const id = bed.engine.connections().find((x) => x.client === endpointKey(c.ip, c.port))!.id;
  bed.sw.take();
  encodingNs = 0;
  const t0 = process.hrtime.bigint();
  bed.engine.verdict(id, { verdict: 'MIGRATE', source: 'bench' });
  total.push(Number(process.hrtime.bigint() - t0) / 1e3);
  encoding.push(encodingNs / 1e3);
  await tick();
  bed.from(c, S1, { flags: { rst: true }, seq: ISN + 6 }, interceptCookie(0, INTERCEPT_ROLE.flagCopy));
}
bed.engine.stop();
// The first connections warm the JIT up: left out.
const warm = Math.floor(N / 6);
const t = total.slice(warm); const e = encoding.slice(warm);
console.log(`MIGRATE verdict → end of its synchronous work, ${t.length} connections: median ${median(t).toFixed(1)} µs, p90 ${quantile(t, 0.9).toFixed(1)} µs; of it encoding the messages: median ${median(e).toFixed(1)} µs`);
