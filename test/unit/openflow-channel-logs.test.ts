// The OpenFlow channel against garbage (issue 11, items 4 and 11): garbage before HELLO ends the
// channel with one HELLO_FAILED and one log line, a wrong version after the handshake gets
// BAD_REQUEST/BAD_VERSION, floods of bad messages are logged at 20 lines a second with a
// suppressed count, everything counts in the malformed metric, and a port probe (connect, close,
// nothing sent, as Mininet does) is not a warning.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { OpenFlowServer } from '../../controller/datapath/openflow-server.ts';
import type { SwitchConnection } from '../../controller/datapath/switch-connection.ts';
import { Controller } from '../../controller/controller.ts';
import { parseConfig } from '../../controller/config.ts';
import { ControllerMetrics, parsePrometheusText, sampleValue } from '../../controller/metrics.ts';
import { OFPET, OFPBRC, OFPHFC } from '../../controller/openflow/index.ts';
import { FakeSwitch } from '../lib/fake-switch.ts';
import { LogCapture } from '../lib/log-capture.ts';

const OPTS = { echoIntervalMs: 60000, deadTimeoutMs: 120000, requestTimeoutMs: 5000 };
/** An 8-byte OpenFlow 1.0 FEATURES_REQUEST: well framed, wrong version, not a HELLO. */
const GARBAGE = Buffer.from('0105000800000000', 'hex');
/** A version-4 PACKET_IN far too short for its fixed part: well framed, undecodable. */
const SHORT_PACKET_IN = (xid: number) => { const b = Buffer.from('040a000c0000000000000000', 'hex'); b.writeUInt32BE(xid, 4); return b; };

describe('OpenFlow channel: garbage, versions and log volume', function () {
  this.timeout(30000);
  let server: OpenFlowServer;
  let port: number;
  let logs: LogCapture;
  const fakes: FakeSwitch[] = [];

  beforeEach(async () => {
    logs = new LogCapture('debug');
    server = new OpenFlowServer({ host: '127.0.0.1', port: 0, ...OPTS }, logs.logger);
    port = (await server.listen()).port;
  });
  afterEach(async () => {
    for (const f of fakes.splice(0)) f.close();
    await server.close();
  });

  async function connected(): Promise<{ sw: FakeSwitch; conn: SwitchConnection }> {
    const up = once(server, 'switch_connected', { signal: AbortSignal.timeout(5000) });
    const sw = await FakeSwitch.connect(port);
    fakes.push(sw);
    sw.hello();
    const [conn] = await up;
    return { sw, conn };
  }

  it('ends a channel that sends 800 KB of garbage before HELLO with one HELLO_FAILED and one warning', async () => {
    let malformed = 0;
    server.on('malformed', () => malformed++);
    const sw = await FakeSwitch.connect(port);
    fakes.push(sw);
    sw.sock.write(Buffer.concat(Array.from({ length: 100000 }, () => GARBAGE)));
    const err = await sw.next('error');
    assert.equal(err.errType, OFPET.HELLO_FAILED);
    assert.equal(err.code, OFPHFC.INCOMPATIBLE);
    await sw.waitClosed();
    const failed = await logs.waitFor((l) => l.msg === 'switch handshake failed', 'about the failed handshake');
    assert.match(String(failed.error), /no HELLO/);
    assert.equal(logs.at('warn').length + logs.at('error').length, 1, JSON.stringify(logs.lines.filter((l) => l.level !== 'debug').slice(0, 5)));
    assert.equal(malformed, 1);
    assert.equal(server.stats.handshakeFailures, 1);
    assert.equal(server.connected.length, 0);
  });

  it('answers a wrong version after the handshake with BAD_REQUEST/BAD_VERSION and stays up', async () => {
    const { sw, conn } = await connected();
    const v5echo = Buffer.from('0502000800000abc', 'hex');
    sw.sock.write(v5echo);
    const err = await sw.next('error', (m) => m.xid === 0xabc);
    assert.equal(err.errType, OFPET.BAD_REQUEST);
    assert.equal(err.code, OFPBRC.BAD_VERSION);
    assert.deepEqual(err.data, v5echo);
    assert.equal(conn.stats.malformed, 1);
    sw.send({ type: 'echo_request', xid: 0x55, data: Buffer.alloc(0) });
    await sw.next('echo_reply', (m) => m.xid === 0x55);
    assert.equal(conn.connected, true);
  });

  it('does not answer a malformed OFPT_ERROR with an error', async () => {
    const { sw } = await connected();
    sw.sock.write(Buffer.from('0401000900000099ff', 'hex')); // an ERROR with a 1-byte body
    sw.send({ type: 'echo_request', xid: 0x56, data: Buffer.alloc(0) });
    await sw.next('echo_reply', (m) => m.xid === 0x56);
    assert.equal(sw.received.filter((m) => m.type === 'error').length, 0);
  });

  it('logs a flood of malformed messages at 20 lines a second, with the suppressed count', async () => {
    const { sw, conn } = await connected();
    const N = 10000;
    const start = Date.now();
    sw.sock.write(Buffer.concat(Array.from({ length: N }, (_, i) => SHORT_PACKET_IN(i + 1))));
    // Messages are handled in order: the echo reply comes after all of them.
    sw.send({ type: 'echo_request', xid: 0x57, data: Buffer.alloc(0) });
    await sw.next('echo_reply', (m) => m.xid === 0x57, 20000);
    const seconds = Math.ceil((Date.now() - start) / 1000);
    assert.equal(conn.stats.malformed, N);
    const flood = () => logs.at('warn', /malformed OpenFlow message/);
    assert.ok(flood().length <= 20 * (seconds + 1), `${flood().length} lines in ~${seconds} s`);
    // Once the one-second window has passed, the next line reports how many were held back.
    await new Promise((r) => setTimeout(r, 1100));
    sw.sock.write(SHORT_PACKET_IN(N + 1));
    await sw.next('error', (m) => m.xid === N + 1);
    const lines = flood();
    const suppressed = lines.reduce((n, l) => n + (typeof l.suppressed === 'number' ? l.suppressed : 0), 0);
    assert.ok(lines.at(-1)!.suppressed, 'the line after the flood carries the suppressed count');
    assert.equal(lines.length + suppressed, N + 1);
    assert.equal(conn.connected, true);
  });

  it('a connection that closes before sending a byte is a debug line, not a warning', async () => {
    for (const reset of [false, true]) {
      const sock = connect(port, '127.0.0.1');
      sock.on('error', () => {});
      await once(sock, 'connect');
      if (reset) sock.resetAndDestroy(); else sock.end();
    }
    await logs.waitFor((l) => l.msg === 'connection closed before sending anything' && logs.at('debug', /closed before sending/).length === 2, 'for both probes');
    assert.deepEqual(logs.at('warn'), []);
    assert.equal(server.stats.silentCloses, 2);
    assert.equal(server.stats.handshakeFailures, 0);
  });

  it('counts garbage before the handshake in the malformed metric', async () => {
    const cap = new LogCapture('error');
    const controller = new Controller(parseConfig({ listen: { host: '127.0.0.1', port: 0 }, api: { enabled: false } }), cap.logger);
    const metrics = new ControllerMetrics(controller);
    try {
      const { port: p } = await controller.start();
      const sw = await FakeSwitch.connect(p);
      fakes.push(sw);
      sw.sock.write(GARBAGE);
      await sw.waitClosed();
      const parsed = parsePrometheusText(await metrics.render());
      assert.equal(sampleValue(parsed, 'tcp_migrate_openflow_errors_total', { kind: 'malformed' }), 1);
      assert.equal(sampleValue(parsed, 'tcp_migrate_openflow_refused_connections_total', { reason: 'handshake' }), 1);
    } finally {
      metrics.dispose();
      await controller.stop();
    }
  });
});
