// OpenFlow over TLS with mutual certificates (issue 11, item 12): a real ovs-vswitchd with an
// `ssl:127.0.0.1:PORT` controller target and certificates made here connects and is prepared;
// clients without a certificate from the controller's CA never get an OpenFlow HELLO.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { randomBytes } from 'node:crypto';
import { Controller } from '../../controller/controller.ts';
import { parseConfig } from '../../controller/config.ts';
import { encodeMessage } from '../../controller/openflow/index.ts';
import { Ovs, STOCK_PREFIX, setSwitchSsl } from '../lib/ovs.ts';
import { nextSwitchReady } from '../lib/controller.ts';
import { LogCapture } from '../lib/log-capture.ts';
import { TestPki } from '../lib/pki.ts';

const BR = `tmtssl${randomBytes(2).toString('hex')}`;
const HELLO = encodeMessage({ type: 'hello', xid: 1, versions: [4] });

/** Resolves when the socket closes, error or not (events.once would reject on 'error'). */
function closed(sock: Socket): Promise<void> {
  if (sock.closed) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('socket still open after 20 s')), 20000);
    sock.once('close', () => { clearTimeout(t); resolve(); });
  });
}

describe('OpenFlow over TLS with a real Open vSwitch', function () {
  this.timeout(120000);
  let pki: TestPki;
  let logs: LogCapture;
  let controller: Controller;
  let ovs: Ovs;
  let port: number;

  before(async () => {
    pki = await TestPki.create();
    logs = new LogCapture('debug');
    const cfg = parseConfig({
      listen: { host: '127.0.0.1', port: 0, tls: { cert: pki.controller.cert, key: pki.controller.key, ca: pki.ca } },
      api: { enabled: false },
    });
    controller = new Controller(cfg, logs.logger);
    port = (await controller.start()).port;
    ovs = await Ovs.start({ prefix: STOCK_PREFIX });
  });

  after(async () => {
    await ovs?.stop();
    await controller?.stop();
    pki?.remove();
  });

  /** A TLS client that sends HELLO once its side of the handshake is done; returns what it got back. */
  async function client(opts: ConnectionOptions): Promise<{ data: Buffer; error?: string }> {
    const sock = tlsConnect({ host: '127.0.0.1', port, ca: readFileSync(pki.ca), checkServerIdentity: () => undefined, ...opts });
    const chunks: Buffer[] = [];
    let error: string | undefined;
    sock.on('data', (d: Buffer) => {
      chunks.push(d);
      sock.end(); // the controller's HELLO (or anything) is all this test needs
    });
    sock.on('secureConnect', () => sock.write(HELLO));
    sock.on('error', (e) => { error = e.message; });
    await closed(sock);
    return { data: Buffer.concat(chunks), error };
  }

  it('prepares an Open vSwitch that connects through an ssl: target with a certificate from the CA', async () => {
    await setSwitchSsl(ovs, { key: pki.switch.key, cert: pki.switch.cert, ca: pki.ca });
    const ready = nextSwitchReady(controller, 30000);
    await ovs.addBridge(BR, { controller: `ssl:127.0.0.1:${port}`, datapathId: '00000000000005c1' });
    const sw = await ready;
    assert.equal(sw.features?.datapathId, 0x5c1n);
    const connected = await logs.waitFor((l) => l.msg === 'switch connected', 'about the switch');
    assert.equal(connected.certificate, 'tmt switch');
    const flows = await ovs.ofctl('-O', 'OpenFlow13', 'dump-flows', BR);
    assert.match(flows, /priority=0 actions=CONTROLLER:65535/);
    assert.match(ovs.log(), new RegExp(`ssl:127\\.0\\.0\\.1:${port}: connected`));
  });

  it('answers a client with a valid certificate (the control for the refusals below)', async () => {
    const r = await client({ cert: readFileSync(pki.switch.cert), key: readFileSync(pki.switch.key) });
    assert.equal(r.data[0], 4, 'an OpenFlow 1.3 message');
    assert.equal(r.data[1], 0, 'HELLO');
  });

  it('refuses a client without a certificate', async () => {
    const before = controller.server.stats.tlsFailures;
    const r = await client({});
    assert.equal(r.data.length, 0, 'no OpenFlow byte for a client without a certificate');
    assert.match(r.error ?? '', /certificate required/);
    await logs.waitFor(() => controller.server.stats.tlsFailures > before, 'the refusal');
    assert.match(String(logs.at('warn', /TLS handshake/).at(-1)!.error), /did not return a certificate/);
    assert.equal(controller.server.stats.tlsFailures, before + 1);
    assert.equal(controller.switches.length, 1);
  });

  it('refuses a client whose certificate another CA signed', async () => {
    const before = controller.server.stats.tlsFailures;
    const r = await client({ cert: readFileSync(pki.rogueSwitch.cert), key: readFileSync(pki.rogueSwitch.key) });
    assert.equal(r.data.length, 0, 'no OpenFlow byte for a stranger');
    await logs.waitFor(() => controller.server.stats.tlsFailures > before, 'the refusal');
    assert.match(String(logs.at('warn', /TLS handshake/).at(-1)!.error), /certificate refused: UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
    assert.equal(controller.switches.length, 1);
  });

  it('refuses a switch speaking plain OpenFlow to the TLS port', async () => {
    const before = controller.server.stats.tlsFailures;
    const sock = tcpConnect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('error', () => {});
    await once(sock, 'connect');
    sock.write(HELLO);
    await closed(sock);
    const got = Buffer.concat(chunks);
    assert.ok(!(got[0] === 4 && got[1] === 0), 'no cleartext OpenFlow HELLO');
    await logs.waitFor(() => controller.server.stats.tlsFailures > before, 'the refusal');
  });

  it('does not warn about a port probe (connect, then close without a byte)', async () => {
    const warnings = logs.at('warn').length;
    const silent = controller.server.stats.silentCloses;
    const sock = tcpConnect(port, '127.0.0.1');
    sock.on('error', () => {});
    await once(sock, 'connect');
    sock.end();
    await logs.waitFor(() => controller.server.stats.silentCloses > silent, 'the probe noticed');
    assert.equal(logs.at('warn').length, warnings);
  });
});
