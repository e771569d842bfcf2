// Multipart replies are capped: a switch that sets REPLY_MORE forever (issue 11, item 3) fails the
// request with MultipartOverflowError instead of growing the controller until the request times out.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { OpenFlowServer } from '../../controller/datapath/openflow-server.ts';
import { MultipartOverflowError, type SwitchConnection } from '../../controller/datapath/switch-connection.ts';
import { silentLogger } from '../../controller/log.ts';
import { MULTIPART_LIMITS, MultipartBudget, type OfpMessage } from '../../controller/openflow/index.ts';
import { FakeSwitch } from '../lib/fake-switch.ts';

// A request timeout far beyond what the caps need: the test fails if the cap does not act.
const OPTS = { echoIntervalMs: 60000, deadTimeoutMs: 120000, requestTimeoutMs: 60000 };
const OFPMPF_REPLY_MORE = 1;

const port = (n: number) => ({ portNo: n, hwAddr: '02:00:00:00:00:01', name: `p${n % 1000}`, config: 0, state: 0, curr: 0, advertised: 0, supported: 0, peer: 0, currSpeed: 0, maxSpeed: 0 });
const part = (xid: number, ports: number, more = true): OfpMessage =>
  ({ type: 'multipart_reply', xid, flags: more ? OFPMPF_REPLY_MORE : 0, body: { kind: 'port_desc', ports: Array.from({ length: ports }, (_, i) => port(i + 1)) } }) as OfpMessage;

describe('OpenFlow channel: multipart reply caps', function () {
  this.timeout(30000);
  let server: OpenFlowServer;
  let sw: FakeSwitch | undefined;
  let conn: SwitchConnection;

  async function start(multipart: { maxParts: number; maxBytes: number }): Promise<void> {
    server = new OpenFlowServer({ host: '127.0.0.1', port: 0, ...OPTS, multipart }, silentLogger);
    const { port: p } = await server.listen();
    const connected = once(server, 'switch_connected', { signal: AbortSignal.timeout(5000) });
    sw = await FakeSwitch.connect(p);
    sw.hello();
    [conn] = await connected;
  }

  afterEach(async () => {
    sw?.close();
    sw = undefined;
    await server?.close();
  });

  /** Streams REPLY_MORE parts until the request settles, as a broken switch would, forever. */
  async function endless(xid: number, portsPerPart: number, settled: () => boolean): Promise<number> {
    let sent = 0;
    while (!settled() && !sw!.closed) {
      for (let i = 0; i < 50; i++) { sw!.send(part(xid, portsPerPart)); sent++; }
      if (sw!.sock.writableNeedDrain) await once(sw!.sock, 'drain');
      else await new Promise((r) => setImmediate(r));
    }
    return sent;
  }

  async function capped(limits: { maxParts: number; maxBytes: number }, portsPerPart: number, why: RegExp): Promise<void> {
    await start(limits);
    let done = false;
    const req = conn.request({ type: 'multipart_request', xid: 0, flags: 0, body: { kind: 'port_desc' } } as OfpMessage);
    req.then(() => (done = true), () => (done = true));
    const mp = await sw!.next('multipart_request');
    const sent = await endless(mp.xid, portsPerPart, () => done);
    await assert.rejects(req, (e: unknown) => e instanceof MultipartOverflowError && why.test(e.message));
    assert.ok(sent > 0);
    assert.equal(conn.stats.multipartOverflows, 1);
    // The rest of that reply is dropped, not handed to the apps; the channel still works.
    const stray: OfpMessage[] = [];
    conn.on('message', (m: OfpMessage) => stray.push(m));
    sw!.send(part(mp.xid, 1));
    sw!.send(part(mp.xid, 1, false));
    sw!.send({ type: 'echo_request', xid: 0x7777, data: Buffer.from('alive') });
    await sw!.next('echo_reply', (m) => m.xid === 0x7777);
    assert.deepEqual(stray, []);
    assert.equal(conn.connected, true);
  }

  it('fails a reply with more parts than allowed', async () => {
    await capped({ maxParts: 200, maxBytes: 1 << 30 }, 1, /more than 200 parts/);
  });

  it('fails a reply with more bytes than allowed', async () => {
    // 20 ports a part: 1296 bytes; 64 KiB is reached after ~50 parts.
    await capped({ maxParts: 1 << 20, maxBytes: 64 * 1024 }, 20, /more than 65536 bytes/);
  });

  it('still collects a reply within the caps, parts in order', async () => {
    await start({ maxParts: 3, maxBytes: 1 << 20 });
    const req = conn.request({ type: 'multipart_request', xid: 0, flags: 0, body: { kind: 'port_desc' } } as OfpMessage);
    const mp = await sw!.next('multipart_request');
    sw!.send(part(mp.xid, 1));
    sw!.send(part(mp.xid, 2));
    sw!.send(part(mp.xid, 3, false));
    const parts = await req;
    assert.deepEqual(parts.map((p) => (p as Extract<OfpMessage, { type: 'multipart_reply' }>).body.kind === 'port_desc' && (p as any).body.ports.length), [1, 2, 3]);
  });

  it('defaults: MultipartBudget uses MULTIPART_LIMITS', () => {
    const b = new MultipartBudget();
    assert.equal(b.add(MULTIPART_LIMITS.maxBytes), undefined);
    assert.match(b.add(1) ?? '', /bytes/);
    const c = new MultipartBudget();
    for (let i = 0; i < MULTIPART_LIMITS.maxParts; i++) assert.equal(c.add(16), undefined);
    assert.match(c.add(16) ?? '', /parts/);
  });
});
