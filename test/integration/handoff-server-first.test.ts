// Server-speaks-first protocols: every echo server greets a new connection ("<name> ready") before
// the client sends anything. The shift must account for what server 1 sent first
// (docs/migration.md: ackDelta = (ISN_T + 1) − ack(held)), on the patched switch and in relay mode.
import assert from 'node:assert/strict';
import { HandoffBed, SERVICE, endClient, type ScriptClient } from '../lib/handoff-net.ts';
import { Capture, type Segment } from '../lib/capture.ts';
import { PATCHED_PREFIX, STOCK_PREFIX, supportsSeqActions } from '../lib/ovs.ts';
import { seqAdd, seqSub } from '../../controller/packet/index.ts';

const CLIENT = '10.0.0.2';

function serverFirst(prefix: string, mode: 'fastpath' | 'relay'): void {
  describe(`server-speaks-first protocols (${mode})`, function () {
    this.timeout(60000);
    let bed: HandoffBed;
    before(async function () {
      this.timeout(120000);
      if (mode === 'fastpath' && !(await supportsSeqActions(PATCHED_PREFIX))) {
        if (process.env.CI) throw new Error(`no patched OVS under ${PATCHED_PREFIX}: run ovs-patch/build.sh`);
        this.skip();
      }
      bed = await HandoffBed.create({ prefix, banner: true });
      assert.equal(bed.engine.modeOf(bed.controller.switches[0].describe()), mode, `the switch runs in ${mode} mode`);
    });
    after(async () => { await bed?.destroy(); });

    const read = async (c: ScriptClient) => (await c.cmd({ op: 'read' })).reply;
    const send = async (c: ScriptClient, line: string) => (await c.cmd({ op: 'send', line })).reply;

    it('migrates at the first client segment after server 1\'s greeting: the client reads server 2\'s greeting, then its reply', async () => {
      const stop = bed.autoVerdict('MIGRATE');
      const c = bed.scriptClient();
      const caps = { s1: await Capture.start(bed.servers.server1, `tcp and host ${CLIENT}`), s2: await Capture.start(bed.servers.server2, `tcp and host ${CLIENT}`) };
      try {
        const { id, port } = await bed.open(c);
        assert.equal(await read(c), 'server1 ready');
        // The held segment acknowledges server 1's greeting; server 2's greeting follows it in the
        // client's byte stream, then the reply to the held request. Nothing is lost or repeated.
        assert.equal(await send(c, 'hello'), 'server2 ready');
        assert.equal(await read(c), 'server2 hello');
        assert.equal(await send(c, 'again'), 'server2 again');
        const view = bed.engine.connections().find((x) => x.id === id)!;
        assert.deepEqual([view.backend, view.migrations], ['server2', 1]);
        await bed.noSockets('server1', port);
        // ackDelta = (ISN_T + 1) − ack(held), and ack(held) = ISN_S1 + 1 + the greeting's length.
        const s1 = await caps.s1.stop();
        const s2 = await caps.s2.stop();
        const synAck = (segs: Segment[], ip: string) => segs.find((s) => s.syn && s.src === ip && s.dport === port)!;
        const greeting = s1.filter((s) => s.src === SERVICE.ip && s.dport === port).reduce((n, s) => n + s.len, 0);
        assert.equal(greeting, Buffer.byteLength('server1 ready\n'));
        const isnS1 = synAck(s1, SERVICE.ip).seq;
        const isnT = synAck(s2, bed.servers.server2.ip).seq;
        assert.equal(view.ackDelta, seqSub(seqAdd(isnT, 1), seqAdd(isnS1, 1 + greeting)));
        await c.cmd({ op: 'close' });
      } finally { stop(); endClient(c); for (const cap of Object.values(caps)) await cap.stop(); }
    });

    it('forwards a client that only listens after handoff.handshakeTimeoutMs, without a verdict; it moves later, mid-stream', async () => {
      bed.engine.setHandoffTimeouts({ handshakeTimeoutMs: 300 });
      const c = bed.scriptClient();
      const held: number[] = [];
      const onHeld = (v: { id: number }) => held.push(v.id);
      bed.engine.on('held', onHeld);
      try {
        const forwarded = new Promise<number>((resolve) => bed.engine.on('forwarded', function on(v: { id: number }) { bed.engine.off('forwarded', on); resolve(v.id); }));
        const { id, port } = await bed.open(c);
        assert.equal(await read(c), 'server1 ready');
        assert.equal(await forwarded, id);
        assert.equal(bed.engine.connections().find((x) => x.id === id)?.phase, 'forwarded');
        // The client's first request is not held: the connection is on server 1's flows already.
        assert.equal(await send(c, 'first'), 'server1 first');
        assert.deepEqual(held, []);
        assert.equal(bed.engine.connections().find((x) => x.id === id)?.lastVerdict, undefined);
        // Server 1 has sent data (its greeting and a reply); the move still lines the streams up.
        await bed.migrateMidStream(id, 'server2');
        assert.equal(await send(c, 'second'), 'server2 ready');
        assert.equal(await read(c), 'server2 second');
        assert.equal(await send(c, 'third'), 'server2 third');
        await bed.noSockets('server1', port);
        await c.cmd({ op: 'close' });
      } finally {
        bed.engine.off('held', onHeld);
        bed.engine.setHandoffTimeouts({ handshakeTimeoutMs: bed.controller.config.handoff.handshakeTimeoutMs });
        endClient(c);
      }
    });
  });
}

serverFirst(PATCHED_PREFIX, 'fastpath');
serverFirst(STOCK_PREFIX, 'relay');
