// A switch whose setup fails is disconnected, with the reason logged, so that it reconnects and
// setup runs again (issue 11, item 5): it must not stay attached half-prepared in mode `unknown`.
import assert from 'node:assert/strict';
import { Controller } from '../../controller/controller.ts';
import { parseConfig } from '../../controller/config.ts';
import { OFPET, OFPBRC, OFPFMFC, type OfpMessage } from '../../controller/openflow/index.ts';
import type { App } from '../../controller/apps/app.ts';
import { FakeSwitch } from '../lib/fake-switch.ts';
import { LogCapture } from '../lib/log-capture.ts';

/** OVS's table for the engine's inc_tcp_seq probe flow (handoff/flow-plan.ts). */
const PROBE_TABLE = 253;

describe('switch setup failure', function () {
  this.timeout(30000);
  let controller: Controller | undefined;
  let sw: FakeSwitch | undefined;
  let logs: LogCapture;

  async function start(apps: App[] = []): Promise<number> {
    logs = new LogCapture('info');
    controller = new Controller(parseConfig({ listen: { host: '127.0.0.1', port: 0 }, api: { enabled: false }, switch: { requestTimeoutMs: 5000 } }), logs.logger, apps);
    return (await controller.start()).port;
  }

  afterEach(async () => {
    sw?.close();
    sw = undefined;
    await controller?.stop();
    controller = undefined;
  });

  /** A switch that answers flow stats (empty), barriers, and whatever `refuse` picks with `refusal`. */
  async function scripted(port: number, refuse: (m: OfpMessage) => Extract<OfpMessage, { type: 'error' }> | undefined): Promise<FakeSwitch> {
    const s = await FakeSwitch.connect(port, '127.0.0.1', 0x5e7n);
    s.onMessage = (m) => {
      const err = refuse(m);
      if (err) { s.send(err); return; }
      if (m.type === 'multipart_request') s.send({ type: 'multipart_reply', xid: m.xid, flags: 0, body: { kind: 'flow', flows: [] } } as OfpMessage);
      if (m.type === 'barrier_request') s.send({ type: 'barrier_reply', xid: m.xid });
    };
    s.hello();
    return s;
  }

  it('disconnects a switch whose flow table cannot be read', async () => {
    const port = await start();
    const gone = new Promise<string>((r) => controller!.once('switch_gone', (_sw, reason: string) => r(reason)));
    sw = await scripted(port, (m) => m.type === 'multipart_request'
      ? { type: 'error', xid: m.xid, errType: OFPET.BAD_REQUEST, code: OFPBRC.EPERM, data: Buffer.alloc(0) } : undefined);
    await sw.waitClosed(10000);
    assert.match(await gone, /setup failed: .*OFPET_BAD_REQUEST\/OFPBRC_EPERM/);
    const line = await logs.waitFor((l) => /switch setup failed/.test(l.msg), 'about the setup failure');
    assert.equal(line.level, 'error');
    assert.equal(line.dpid, '00000000000005e7');
    assert.match(String(line.error), /OFPET_BAD_REQUEST\/OFPBRC_EPERM/);
    assert.equal(controller!.switches.length, 0);
    assert.equal(controller!.stats.setupFailures, 1);
  });

  it('disconnects a switch the handoff engine could not probe (it would stay in mode unknown)', async () => {
    const port = await start();
    sw = await scripted(port, (m) => m.type === 'flow_mod' && m.tableId === PROBE_TABLE && m.command === 'add'
      ? { type: 'error', xid: m.xid, errType: OFPET.FLOW_MOD_FAILED, code: OFPFMFC.TABLE_FULL, data: Buffer.alloc(0) } : undefined);
    await sw.waitClosed(10000);
    const line = await logs.waitFor((l) => /switch setup failed/.test(l.msg), 'about the setup failure');
    assert.match(String(line.error), /app handoff: .*OFPET_FLOW_MOD_FAILED\/OFPFMFC_TABLE_FULL/);
    assert.equal(controller!.engine.modeOf('00000000000005e7'), undefined);
    assert.equal(controller!.switches.length, 0);
  });

  it('disconnects when an app fails to take the switch, and prepares it again when it reconnects', async () => {
    let fail = true;
    const port = await start([{ name: 'flaky', switchReady() { if (fail) throw new Error('not today'); } }]);
    sw = await scripted(port, () => undefined);
    await sw.waitClosed(10000);
    assert.match(String((await logs.waitFor((l) => /switch setup failed/.test(l.msg), 'about the setup failure')).error), /app flaky: not today/);
    // The switch reconnects (OVS would, after its backoff) and this time setup succeeds.
    fail = false;
    const ready = new Promise((r) => controller!.once('switch_ready', r));
    sw = await scripted(port, () => undefined);
    await ready;
    assert.equal(controller!.switches.length, 1);
    assert.equal(controller!.engine.modeOf('00000000000005e7'), 'fastpath');
  });
});
