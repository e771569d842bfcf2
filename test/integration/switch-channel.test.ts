// The switch channel against scripted peers over real TCP (IPv4 and IPv6): negotiation,
// keepalive and dead-switch detection, error attribution, multipart aggregation, reconnects.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { OpenFlowServer } from '../../controller/datapath/openflow-server.ts';
import { OpenFlowError, type SwitchConnection } from '../../controller/datapath/switch-connection.ts';
import { silentLogger } from '../../controller/log.ts';
import { flowMod, OFPET, OFPBAC, OFPHFC, type OfpMessage } from '../../controller/openflow/index.ts';
import { FakeSwitch } from '../lib/fake-switch.ts';

const OPTS = { echoIntervalMs: 200, deadTimeoutMs: 700, requestTimeoutMs: 2000 };

describe('switch channel', function () {
  this.timeout(20000);
  let server: OpenFlowServer;
  let port: number;
  const fakes: FakeSwitch[] = [];

  async function fake(host = '127.0.0.1', dpid = 0x42n): Promise<{ sw: FakeSwitch; conn: SwitchConnection }> {
    const connected = once(server, 'switch_connected', { signal: AbortSignal.timeout(5000) });
    const sw = await FakeSwitch.connect(port, host, dpid);
    fakes.push(sw);
    sw.hello();
    const [conn] = await connected;
    return { sw, conn };
  }

  beforeEach(async () => {
    server = new OpenFlowServer({ host: '::', port: 0, ...OPTS }, silentLogger);
    port = (await server.listen()).port;
  });
  afterEach(async () => {
    for (const f of fakes.splice(0)) f.close();
    await server.close();
  });

  it('accepts switches over IPv6 and IPv4 and negotiates 1.3', async () => {
    const a = await fake('::1', 1n);
    assert.equal(a.conn.features?.datapathId, 1n);
    const b = await fake('127.0.0.1', 2n);
    assert.equal(b.conn.features?.datapathId, 2n);
    assert.equal(server.connected.length, 2);
  });

  it('refuses a switch without OpenFlow 1.3 with HELLO_FAILED', async () => {
    const sw = await FakeSwitch.connect(port);
    fakes.push(sw);
    sw.hello([1]);
    const err = await sw.next('error');
    assert.equal(err.errType, OFPET.HELLO_FAILED);
    assert.equal(err.code, OFPHFC.INCOMPATIBLE);
    await sw.waitClosed();
  });

  it('answers echo requests and declares a silent switch dead', async () => {
    const { sw, conn } = await fake();
    sw.send({ type: 'echo_request', xid: 77, data: Buffer.from('hi') });
    const reply = await sw.next('echo_reply', (m) => m.xid === 77);
    assert.equal(reply.data.toString(), 'hi');
    // Stop answering: the controller probes with echo requests, then gives up.
    sw.autoEcho = false;
    await sw.next('echo_request');
    const [reason] = await once(conn, 'close', { signal: AbortSignal.timeout(5000) });
    assert.match(reason, /no message for \d+ ms/);
    await sw.waitClosed();
  });

  it('keeps a switch that answers echoes alive past the dead timeout', async () => {
    const { sw, conn } = await fake();
    const start = Date.now();
    // Five echo rounds (each after ~echoIntervalMs of silence) outlast deadTimeoutMs.
    for (let i = 0; i < 5; i++) await sw.next('echo_request');
    assert.ok(Date.now() - start > OPTS.deadTimeoutMs);
    assert.equal(conn.connected, true);
  });

  it('reports the OFPT_ERROR of a flow-mod to the barrier that covers it', async () => {
    const { sw, conn } = await fake();
    const xid = conn.send(flowMod({ command: 'add', match: {}, instructions: [] }));
    const barrier = conn.barrier();
    const fm = await sw.next('flow_mod', (m) => m.xid === xid);
    sw.send({ type: 'error', xid: fm.xid, errType: OFPET.BAD_ACTION, code: OFPBAC.BAD_EXP_TYPE, data: Buffer.alloc(0) });
    const br = await sw.next('barrier_request');
    sw.send({ type: 'barrier_reply', xid: br.xid });
    await assert.rejects(barrier, (e: unknown) => e instanceof OpenFlowError && e.errType === OFPET.BAD_ACTION && e.requestType === 'flow_mod');
    // The next barrier is clean.
    const next = conn.barrier();
    const br2 = await sw.next('barrier_request');
    sw.send({ type: 'barrier_reply', xid: br2.xid });
    await next;
  });

  it('collects every part of a multipart reply', async () => {
    const { sw, conn } = await fake();
    const req = conn.request({ type: 'multipart_request', xid: 0, flags: 0, body: { kind: 'port_desc' } } as OfpMessage);
    const mp = await sw.next('multipart_request');
    const port = (n: number) => ({ portNo: n, hwAddr: '02:00:00:00:00:0' + n, name: `p${n}`, config: 0, state: 0, curr: 0, advertised: 0, supported: 0, peer: 0, currSpeed: 0, maxSpeed: 0 });
    sw.send({ type: 'multipart_reply', xid: mp.xid, flags: 1, body: { kind: 'port_desc', ports: [port(1)] } } as OfpMessage);
    sw.send({ type: 'multipart_reply', xid: mp.xid, flags: 0, body: { kind: 'port_desc', ports: [port(2)] } } as OfpMessage);
    const parts = await req;
    assert.equal(parts.length, 2);
    assert.deepEqual(parts.map((p) => (p as any).body.ports[0].portNo), [1, 2]);
  });

  it('a reconnecting datapath replaces its old channel once that one stops answering echo', async () => {
    const first = await fake('127.0.0.1', 9n);
    first.sw.autoEcho = false; // the old connection is half-open: the switch behind it is gone
    const closed = once(first.conn, 'close');
    const second = await fake('127.0.0.1', 9n);
    const [reason] = await closed;
    // Whichever notices first: the takeover probe, or the keepalive (deadTimeoutMs is short here).
    assert.match(reason, /stopped answering echo|no message for \d+ ms/);
    assert.equal(server.connected.length, 1);
    assert.equal(server.get(9n), second.conn);
  });

  it('a second connection for a live datapath is refused', async () => {
    const first = await fake('127.0.0.1', 11n);
    const sw = await FakeSwitch.connect(port, '127.0.0.1', 11n);
    fakes.push(sw);
    sw.hello();
    const err = await sw.next('error');
    assert.equal(err.errType, OFPET.HELLO_FAILED);
    assert.equal(err.code, OFPHFC.EPERM);
    await sw.waitClosed();
    assert.equal(server.get(11n), first.conn);
    assert.equal(first.conn.connected, true);
  });

  it('stops reading from a switch that does not read its replies, and resumes when it does', async function () {
    this.timeout(60000);
    const { sw, conn } = await fake();
    // Every Packet-In is answered with a Packet-Out three times its size.
    conn.on('message', (m: OfpMessage) => {
      if (m.type === 'packet_in') conn.send({ type: 'packet_out', xid: 0, bufferId: 0xffffffff, inPort: 1, actions: [{ type: 'output', port: 2 }], data: Buffer.concat([m.data, m.data, m.data]) });
    });
    sw.sock.pause(); // the switch stops reading
    const frame = Buffer.alloc(1400, 0xab);
    const pin = (xid: number) => ({ type: 'packet_in' as const, xid, bufferId: 0xffffffff, totalLen: frame.length, reason: 0, tableId: 0, cookie: 0n, match: { inPort: 1 }, data: frame });
    let sent = 0;
    // Send until the controller pushes back: its replies fill the socket buffers and it stops reading.
    while (conn.stats.backpressurePauses === 0 && sent < 200000) {
      for (let i = 0; i < 200; i++) sw.send(pin(++sent));
      await new Promise((r) => setImmediate(r));
      if (!sw.sock.writableNeedDrain) continue;
      await Promise.race([once(sw.sock, 'drain'), new Promise((r) => setTimeout(r, 200))]);
    }
    assert.ok(conn.stats.backpressurePauses > 0, `no back-pressure after ${sent} packet-ins`);
    // The switch reads again: everything it sent is answered, nothing lost.
    let outs = 0;
    sw.received.length = 0;
    const done = new Promise<void>((resolve) => {
      sw.sock.on('data', () => {
        outs = sw.received.filter((m) => m.type === 'packet_out').length;
        if (outs >= sent) resolve();
      });
    });
    sw.sock.resume();
    await done;
    assert.equal(outs, sent);
    assert.equal(conn.connected, true);
  });

  it('rejects pending requests when the switch disconnects', async () => {
    const { sw, conn } = await fake();
    const pending = conn.request({ type: 'barrier_request', xid: 0 });
    await sw.next('barrier_request');
    sw.close();
    await assert.rejects(pending, /disconnected/);
  });
});
