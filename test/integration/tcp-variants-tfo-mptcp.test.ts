// Issue 17, "How it is shown" (part 2 of 2; the other variants are in tcp-variants.test.ts):
// TCP Fast Open clients (data in the SYN without a cookie, and with a valid cookie of server 1's)
// and MPTCP clients (IPPROTO_MPTCP sockets) through the patched OVS, the built-in matcher deciding.
// Policy (docs/migration.md, TCP options): the controller strips the TFO option and the data of a
// SYN, so no server gets data before a verdict; the client retransmits it after the handshake
// (RFC 7413) and that segment is held and analysed. MP_CAPABLE is stripped (options.mptcp
// 'strip', the default): the client knowingly runs plain TCP. Servers accept data in a SYN
// without a cookie on every listener (tcp_fastopen=0x603): the worst case.
import assert from 'node:assert/strict';
import { HandoffBed } from '../lib/handoff-net.ts';
import { PATCHED_PREFIX, requirePatchedOvs } from '../lib/ovs.ts';
import { Capture } from '../lib/capture.ts';
import { stop, waitFor } from '../lib/exec.ts';
import { PyEcho, RULES, assertIntact, delta, nstat, payloadFrom, syns, sysctls, transfer, type TransferOptions } from '../lib/tcp-variants.ts';

const CLIENT = '10.0.0.2';
const UPLOAD = 1 << 20;
const BLOB = 2 << 20;
/** Servers: TFO server on every listener (0x400), data accepted without a cookie (0x200). */
const TFO_SERVER_NO_COOKIE = 0x603;
/** Server 1 while the client gets a cookie: TFO on every listener, cookie required. */
const TFO_SERVER_COOKIE = 0x403;
/** Client: TFO, and data in the SYN even without a cookie (0x4). */
const TFO_CLIENT_NO_COOKIE = 0x5;
/** A listener on server 1 outside the service (not intercepted): where the client gets its cookie. */
const SIDE_PORT = 5002;

describe('TCP Fast Open and MPTCP clients through the controller (issue 17)', function () {
  this.timeout(120000);
  let bed: HandoffBed;
  before(async function () {
    await requirePatchedOvs(this);
    const tfo = [`net.ipv4.tcp_fastopen=${TFO_SERVER_NO_COOKIE}`];
    bed = await HandoffBed.create({
      prefix: PATCHED_PREFIX, analyzers: { builtin: { rules: [RULES], vars: { HOME_NET: '10.0.0.0/8' } } },
      sysctls: { client: [`net.ipv4.tcp_fastopen=${TFO_CLIENT_NO_COOKIE}`, 'net.mptcp.enabled=1'], server1: tfo, server2: tfo, server3: tfo },
    });
  });
  after(async () => { await bed?.destroy(); });

  /** Full captures of the client's traffic on the client and both servers. */
  async function captures(): Promise<Record<'client' | 'server1' | 'server2', Capture>> {
    const caps: Partial<Record<'client' | 'server1' | 'server2', Capture>> = {};
    try {
      caps.client = await Capture.start(bed.client, 'tcp');
      caps.server1 = await Capture.start(bed.servers.server1, `tcp and host ${CLIENT}`);
      caps.server2 = await Capture.start(bed.servers.server2, `tcp and host ${CLIENT}`);
    } catch (e) { for (const c of Object.values(caps)) await c.stop(); throw e; }
    return caps as Record<'client' | 'server1' | 'server2', Capture>;
  }
  const stopAll = async (caps: Record<string, Capture>) => { for (const c of Object.values(caps)) await c.stop(); };

  /** Every move the engine reports while `fn` runs, per client port. */
  async function withOutcomes<T>(fn: () => Promise<T>): Promise<{ value: T; outcomes: (port: number) => string[] }> {
    const seen: { client: string; what: string }[] = [];
    const ok = (v: { client: string }, info: { to: string }) => seen.push({ client: v.client, what: `migrated to ${info.to}` });
    const no = (v: { client: string }, info: { why: string }) => seen.push({ client: v.client, what: `migration_failed: ${info.why}` });
    bed.engine.on('migrated', ok).on('migration_failed', no);
    try {
      const value = await fn();
      return { value, outcomes: (port) => seen.filter((s) => s.client === `${CLIENT}:${port}`).map((s) => s.what) };
    } finally { bed.engine.off('migrated', ok).off('migration_failed', no); }
  }

  describe('TCP Fast Open', () => {
    const TFO_COUNTERS = ['TcpExtTCPFastOpenPassive', 'TcpExtTCPFastOpenCookieReqd', 'TcpExtTCPFastOpenPassiveFail'];
    let side: PyEcho | undefined;
    after(async () => { await side?.stop(); });

    /**
     * One TFO connection (its first line in the SYN), sha256-checked both ways, to `expect`.
     * Asserts the client really put the line in its SYN, and that no server got a SYN with data,
     * a TFO option, or (server 1, on a move) the line at all.
     */
    async function tfoTransfer(expect: 'server1' | 'server2', first: string, tfo: 'sendto' | 'connect', cookie: boolean) {
      const o: TransferOptions = { first, tfo, upload: UPLOAD, blob: BLOB, seed: 3 };
      const before = { s1: await nstat(bed.servers.server1), s2: await nstat(bed.servers.server2), c: await nstat(bed.client) };
      const caps = await captures();
      try {
        const { value: r, outcomes } = await withOutcomes(() => transfer(bed.client, o));
        await stopAll(caps);
        // The client did what a TFO client does: the first line rode in its SYN (with the cookie, if it had one).
        const clientSyn = syns(caps.client, r.port).find((s) => !s.ack && s.dport === 5001);
        assert.ok(clientSyn, "the client's SYN was captured");
        assert.equal(clientSyn.payload, `${first}\n`, 'the client sent its first line in the SYN');
        if (cookie) assert.ok((clientSyn.tfo?.cookieLength ?? 0) >= 4, `the client's SYN carries server 1's TFO cookie: ${JSON.stringify(clientSyn.tfo)}`);
        // No server got a SYN with data or a TFO option, and the line reached exactly the server that answered it.
        for (const s of ['server1', 'server2'] as const) {
          const got = syns(caps[s], r.port).filter((x) => !x.ack);
          assert.deepEqual(got.filter((x) => x.len > 0).map((x) => x.payload), [], `${s} got a SYN with data`);
          assert.deepEqual(got.filter((x) => x.tfo), [], `${s} got a SYN with a TFO option`);
        }
        const s1 = payloadFrom(caps.server1, CLIENT, r.port);
        if (expect === 'server2') {
          assert.ok(!s1.includes(first), `server 1 received the first line (${JSON.stringify(s1.slice(0, 80))})`);
          assert.ok(payloadFrom(caps.server2, CLIENT, r.port).startsWith(`${first}\n`), 'server 2 received the first line first');
        } else assert.ok(s1.startsWith(`${first}\n`), 'server 1 received the first line first');
        assertIntact(r, expect, o);
        await waitFor(() => expect === 'server1' || outcomes(r.port).length > 0, 'the move to be reported');
        assert.deepEqual(outcomes(r.port), expect === 'server2' ? ['migrated to server2'] : []);
        // No server took data from a SYN (nor was asked for a cookie); the client knows its SYN data was not taken.
        const after = { s1: await nstat(bed.servers.server1), s2: await nstat(bed.servers.server2), c: await nstat(bed.client) };
        assert.deepEqual(delta(before.s1, after.s1, TFO_COUNTERS), Object.fromEntries(TFO_COUNTERS.map((n) => [n, 0])), 'server 1 TFO counters');
        assert.deepEqual(delta(before.s2, after.s2, TFO_COUNTERS), Object.fromEntries(TFO_COUNTERS.map((n) => [n, 0])), 'server 2 TFO counters');
        assert.ok(delta(before.c, after.c, ['TcpExtTCPFastOpenActiveFail']).TcpExtTCPFastOpenActiveFail >= 1, 'the client saw its SYN data unacknowledged (and sent it again)');
      } finally { await stopAll(caps); }
    }

    it('the worst case is real: outside the controller, server 1 takes data from a SYN without a cookie', async () => {
      side = await PyEcho.start(bed.servers.server1, 'server1-side', SIDE_PORT);
      const before = await nstat(bed.servers.server1);
      const cap = await Capture.start(bed.servers.server1, `tcp and port ${SIDE_PORT}`);
      try {
        const r = await transfer(bed.client, { first: 'direct', tfo: 'sendto' }, { ip: '10.0.0.1', port: SIDE_PORT });
        assert.equal(r.first, 'server1-side direct');
        await cap.stop();
        assert.ok(syns(cap, r.port).some((s) => !s.ack && s.payload === 'direct\n'), 'server 1 got a SYN with data');
        assert.ok(delta(before, await nstat(bed.servers.server1), ['TcpExtTCPFastOpenPassive']).TcpExtTCPFastOpenPassive >= 1, 'server 1 accepted it (TFO passive)');
      } finally { await cap.stop(); }
    });

    for (const tfo of ['sendto', 'connect'] as const) {
      const how = tfo === 'sendto' ? 'sendto(MSG_FASTOPEN)' : 'TCP_FASTOPEN_CONNECT';
      it(`data in a SYN without a cookie (${how}) matching a MIGRATE rule: held, migrated, never seen by server 1`, () => tfoTransfer('server2', 'please migrate', tfo, false));
    }
    it('data in a SYN without a cookie matching no rule: FORWARDed to server 1, which gets it only after its handshake', () => tfoTransfer('server1', 'just hello', 'sendto', false));

    describe('with a TFO cookie from server 1', () => {
      let restore: (() => Promise<void>)[] = [];
      before(async () => {
        restore = [await sysctls(bed.client, ['net.ipv4.tcp_fastopen=1']), await sysctls(bed.servers.server1, [`net.ipv4.tcp_fastopen=${TFO_SERVER_COOKIE}`])];
        side ??= await PyEcho.start(bed.servers.server1, 'server1-side', SIDE_PORT);
        // A connection outside the service asks server 1 for a cookie (cached per server address);
        // the second one proves the client has it: server 1 takes its SYN data.
        const s1 = await nstat(bed.servers.server1);
        for (const first of ['get a cookie', 'use it']) await transfer(bed.client, { first, tfo: 'sendto' }, { ip: '10.0.0.1', port: SIDE_PORT });
        assert.ok(delta(s1, await nstat(bed.servers.server1), ['TcpExtTCPFastOpenPassive']).TcpExtTCPFastOpenPassive >= 1, 'the client holds a valid cookie of server 1');
      });
      after(async () => { for (const f of restore.reverse()) await f(); });

      it('cookie and data in the SYN, MIGRATE rule: migrated, server 1 never sees cookie or data', () => tfoTransfer('server2', 'please migrate', 'sendto', true));
      it('cookie and data in the SYN, no rule: FORWARDed intact, the data reaching server 1 after its handshake', () => tfoTransfer('server1', 'just hello', 'sendto', true));
    });
  });

  describe('MPTCP clients (IPPROTO_MPTCP), MP_CAPABLE stripped by default', () => {
    const echo: PyEcho[] = [];
    const SERVER_COUNTERS = ['MPTcpExtMPCapableSYNRX'];
    const CLIENT_COUNTERS = ['MPTcpExtMPCapableDataFallback', 'MPTcpExtMPCapableFallbackACK'];
    before(async function () {
      const have = await nstat(bed.client);
      if (!('MPTcpExtMPCapableSYNRX' in have)) {
        if (process.env.CI) throw new Error('this kernel has no MPTCP counters (CONFIG_MPTCP)');
        this.skip();
      }
      // MPTCP-capable servers (Node cannot open an MPTCP socket): without the strip they would negotiate MPTCP.
      for (const name of ['server1', 'server2']) {
        await stop(bed.echo[name], 2000);
        echo.push(await PyEcho.start(bed.servers[name], name, 5001, { mptcp: true }));
      }
    });
    after(async () => {
      for (const e of echo) await e.stop();
      for (const name of ['server1', 'server2']) if (bed.echo[name]?.exitCode !== null || bed.echo[name]?.signalCode !== null) await bed.startEcho(bed.servers[name], name);
    });

    it('the servers speak MPTCP: a direct MPTCP connection to server 2 (not a service address) negotiates it', async () => {
      const before = await nstat(bed.servers.server2);
      const r = await transfer(bed.client, { first: 'direct', mptcp: true, upload: 64 << 10 }, { ip: '10.0.0.3', port: 5001 });
      assert.equal(r.first, 'server2 direct');
      assert.equal(r.mptcp, true, 'the connection runs MPTCP');
      assert.ok(delta(before, await nstat(bed.servers.server2), SERVER_COUNTERS).MPTcpExtMPCapableSYNRX >= 1);
    });

    for (const expect of ['server1', 'server2'] as const) {
      it(`${expect === 'server1' ? 'FORWARD' : 'MIGRATE'}: the client sees a SYN-ACK without MP_CAPABLE and runs plain TCP, ${UPLOAD >> 20} MB echoed intact`, async () => {
        const o: TransferOptions = { first: expect === 'server2' ? 'please migrate' : 'please forward', mptcp: true, upload: UPLOAD, seed: 5 };
        const before = { s1: await nstat(bed.servers.server1), s2: await nstat(bed.servers.server2), c: await nstat(bed.client) };
        const caps = await captures();
        try {
          const { value: r, outcomes } = await withOutcomes(() => transfer(bed.client, o));
          await stopAll(caps);
          assertIntact(r, expect, o);
          assert.equal(r.mptcp, false, 'the client knows it runs plain TCP');
          await waitFor(() => expect === 'server1' || outcomes(r.port).length > 0, 'the move to be reported');
          assert.deepEqual(outcomes(r.port), expect === 'server2' ? ['migrated to server2'] : []);
          assert.ok(syns(caps.client, r.port).find((s) => !s.ack)?.mptcp, "the client's SYN carried MP_CAPABLE");
          for (const s of ['server1', 'server2'] as const) assert.deepEqual(syns(caps[s], r.port).filter((x) => x.mptcp), [], `${s} got a segment with MP_CAPABLE`);
          const after = { s1: await nstat(bed.servers.server1), s2: await nstat(bed.servers.server2), c: await nstat(bed.client) };
          assert.deepEqual(delta(before.s1, after.s1, SERVER_COUNTERS), { MPTcpExtMPCapableSYNRX: 0 }, 'server 1');
          assert.deepEqual(delta(before.s2, after.s2, SERVER_COUNTERS), { MPTcpExtMPCapableSYNRX: 0 }, 'server 2');
          assert.deepEqual(delta(before.c, after.c, CLIENT_COUNTERS), { MPTcpExtMPCapableDataFallback: 0, MPTcpExtMPCapableFallbackACK: 0 }, 'the client did not fall back silently');
          assert.ok(delta(before.c, after.c, ['MPTcpExtMPCapableFallbackSYNACK']).MPTcpExtMPCapableFallbackSYNACK >= 1, 'the client fell back at the SYN-ACK, knowingly');
        } finally { await stopAll(caps); }
      });
    }
  });

  describe('afterwards', () => {
    it('leaves no connection state in the controller or the switch', async () => {
      await waitFor(() => bed.engine.table.size === 0, 'the connection table to empty', 15000);
      await waitFor(async () => (await bed.connectionFlows()).length === 0, 'per-connection flows to go', 15000);
    });
  });
});
