// Verdicts from real analyzers drive real handoffs: a live Suricata on the switch's mirror port,
// the built-in matcher, and Snort unixsock datagrams, each against Linux peers in namespaces.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { startLiveSuricata } from '../../topo/lib/suricata.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FABRIC_DPIDS, HandoffBed, IDS_PORT, type ScriptClient } from '../lib/handoff-net.ts';
import { PATCHED_PREFIX, STOCK_PREFIX, supportsSeqActions } from '../lib/ovs.ts';
import { requireSuricata } from './analyzer-suricata-helpers.ts';
import { encodeAlertPkt, sendDgram } from '../../controller/analyzers/index.ts';

const RULES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'snort-rules', 'migrate.rules');
// The patched switch (fast path) when it works; CI requires it. Each title says which ran.
const patched = await supportsSeqActions(PATCHED_PREFIX);
const mode = patched ? 'fastpath' : 'relay';

const VERDICT_TIMEOUT_MS = 3000;

interface Scenario {
  name: string; setup: (dir: string) => Promise<Record<string, unknown>>; start?: (bed: HandoffBed, dir: string) => Promise<() => Promise<void>>; midStream: boolean;
  /** Who applies the default verdict to a segment no rule matches: the timeout, or the built-in matcher at once. */
  noMatch: 'timeout' | 'builtin (no rule matched)';
  /** 6: a dual-stack bed and service, the client over IPv6. */
  family?: 4 | 6;
  /** The fabric bed: client, server 1, server 2 on three switches, the IDS on server 2's (mirrorSwitch). */
  fabric?: boolean;
}

async function session(bed: HandoffBed): Promise<{ c: ScriptClient; id: number }> {
  const c = bed.scriptClient();
  return { c, id: (await bed.open(c)).id };
}

function scenarios(s: Scenario): void {
  describe(`verdicts from ${s.name} (${mode}${s.family === 6 ? ', IPv6' : ''}${s.fabric ? ', fabric of three switches' : ''})`, function () {
    this.timeout(120000);
    let bed: HandoffBed;
    let dir: string;
    let stopIds: (() => Promise<void>) | undefined;
    before(async function () {
      if (s.name.startsWith('Suricata')) await requireSuricata(this);
      if (!patched && process.env.CI) throw new Error(`no patched OVS under ${PATCHED_PREFIX}: run ovs-patch/build.sh`);
      dir = mkdtempSync('/tmp/tmt-ana-');
      const analyzers = await s.setup(dir);
      bed = await HandoffBed.create({
        prefix: patched ? PATCHED_PREFIX : STOCK_PREFIX, ids: true, analyzers, family: s.family, fabric: s.fabric,
        services: { mirrorPort: IDS_PORT, mirrorAll: s.midStream, verdictTimeoutMs: VERDICT_TIMEOUT_MS, ...(s.fabric && { mirrorSwitch: FABRIC_DPIDS[2] }) },
      });
      assert.equal(bed.engine.modeOf(bed.controller.switches[0].describe()), mode, `the switch runs in ${mode} mode`);
      if (s.start) stopIds = await s.start(bed, dir);
    });
    after(async () => {
      await stopIds?.();
      await bed?.destroy();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('payload containing "migrate" → migrated to server 2', async () => {
      const { c, id } = await session(bed);
      try {
        assert.equal((await c.cmd({ op: 'send', line: 'please migrate me' })).reply, 'server2 please migrate me');
        const v = bed.engine.connections().find((x) => x.id === id)!;
        assert.equal(v.lastVerdict?.verdict, 'MIGRATE');
        assert.equal(v.lastVerdict?.sid, 1000002);
        assert.equal((await c.cmd({ op: 'send', line: 'and then' })).reply, 'server2 and then');
        await c.cmd({ op: 'close' });
      } finally { c.end(); }
    });

    it('payload containing "forward" → stays on server 1', async () => {
      const { c, id } = await session(bed);
      try {
        assert.equal((await c.cmd({ op: 'send', line: 'forward this' })).reply, 'server1 forward this');
        const v = bed.engine.connections().find((x) => x.id === id)!;
        assert.equal(v.lastVerdict?.verdict, 'FORWARD');
        assert.equal(v.lastVerdict?.sid, 1000001);
        await c.cmd({ op: 'close' });
      } finally { c.end(); }
    });

    it(`payload with neither → the default verdict, ${s.noMatch === 'timeout' ? 'once the verdict timeout fired' : 'at once from the built-in matcher'}`, async () => {
      const { c, id } = await session(bed);
      try {
        const sent = Date.now();
        assert.equal((await c.cmd({ op: 'send', line: 'just hello' })).reply, 'server1 just hello');
        const v = bed.engine.connections().find((x) => x.id === id)!;
        assert.deepEqual(v.lastVerdict && { verdict: v.lastVerdict.verdict, source: v.lastVerdict.source, sid: v.lastVerdict.sid },
          { verdict: bed.engine.service('echo')!.defaultVerdict, source: s.noMatch, sid: undefined });
        const after = v.lastVerdict!.at - sent;
        if (s.noMatch === 'timeout') assert.ok(after >= VERDICT_TIMEOUT_MS - 50, `the default applied after the timeout, not ${after} ms after the segment`);
        else assert.ok(after < VERDICT_TIMEOUT_MS, `the default applied before the timeout, not ${after} ms after the segment`);
        await c.cmd({ op: 'close' });
      } finally { c.end(); }
    });

    if (s.midStream) {
      it('a MIGRATE later in the stream → mid-stream migration at the next client segment', async () => {
        const { c, id } = await session(bed);
        try {
          assert.equal((await c.cmd({ op: 'send', line: 'hello' })).reply, 'server1 hello');
          const pending = once(bed.engine, 'move_pending', { signal: AbortSignal.timeout(10000) });
          // This segment is already on its way to server 1; the alert about it moves the connection.
          assert.equal((await c.cmd({ op: 'send', line: 'now migrate' })).reply, 'server1 now migrate');
          const [view, info] = await pending;
          assert.equal(view.id, id);
          assert.equal(info.to, 'server2');
          assert.equal((await c.cmd({ op: 'send', line: 'next' })).reply, 'server2 next');
          await c.cmd({ op: 'close' });
        } finally { c.end(); }
      });
    }
  });
}

scenarios({
  name: 'the built-in matcher',
  midStream: true,
  noMatch: 'builtin (no rule matched)',
  setup: async () => ({ builtin: { rules: [RULES], vars: { HOME_NET: '10.0.0.0/8' } } }),
});

scenarios({
  name: 'Suricata (live, mirror port)',
  midStream: true,
  noMatch: 'timeout',
  setup: async (dir) => ({ suricata: { socket: join(dir, 'eve.sock') } }),
  start: async (bed, dir) => {
    const ids = await startLiveSuricata(bed.ids!, dir, { rules: RULES, eveSocket: join(dir, 'eve.sock') });
    return () => ids.stop();
  },
});

// The same over IPv6: the rules' $HOME_NET names the bed's IPv6 prefix too; Suricata reads the
// mirrored IPv6 segments and its EVE records name the flow in its own IPv6 spelling.
const HOME_NET_DUAL = '[10.0.0.0/8,fd00::/8]';
scenarios({
  name: 'the built-in matcher',
  family: 6,
  midStream: true,
  noMatch: 'builtin (no rule matched)',
  setup: async () => ({ builtin: { rules: [RULES], vars: { HOME_NET: HOME_NET_DUAL } } }),
});

scenarios({
  name: 'Suricata (live, mirror port)',
  family: 6,
  midStream: true,
  noMatch: 'timeout',
  setup: async (dir) => ({ suricata: { socket: join(dir, 'eve.sock') } }),
  start: async (bed, dir) => {
    const ids = await startLiveSuricata(bed.ids!, dir, { rules: RULES, eveSocket: join(dir, 'eve.sock'), homeNet: HOME_NET_DUAL });
    return () => ids.stop();
  },
});

// The IDS on another switch than the client's: the held segments (and the handshakes) are copied
// out of its port there, and with mirrorAll every later client segment too (through the controller).
scenarios({
  name: 'Suricata (live, mirror port)',
  fabric: true,
  midStream: true,
  noMatch: 'timeout',
  setup: async (dir) => ({ suricata: { socket: join(dir, 'eve.sock') } }),
  start: async (bed, dir) => {
    const ids = await startLiveSuricata(bed.ids!, dir, { rules: RULES, eveSocket: join(dir, 'eve.sock') });
    return () => ids.stop();
  },
});

scenarios({
  name: 'Snort unixsock datagrams',
  midStream: false,
  noMatch: 'timeout',
  setup: async (dir) => ({ snort: { socket: join(dir, 'snort_alert') } }),
  start: async (bed, dir) => {
    // Plays Snort: on each held segment, sends the Alertpkt Snort would send for its rules.
    const onHeld = (_c: unknown, frame: { raw: Buffer; payload: Buffer }) => {
      const text = frame.payload.toString('latin1').toLowerCase();
      const rule = text.includes('migrate') ? { msg: '"MIGRATE"', sid: 1000002 } : text.includes('forward') ? { msg: '"FORWARD"', sid: 1000001 } : undefined;
      if (rule) sendDgram(join(dir, 'snort_alert'), encodeAlertPkt({ ...rule, rev: 1, packet: frame.raw }));
    };
    bed.engine.on('held_frame', onHeld);
    return async () => { bed.engine.off('held_frame', onHeld); };
  },
});
