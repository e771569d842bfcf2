// Issue 15, connection-ID steering end to end (docs/quic.md, "Connection-ID steering"): stock
// OVS, the controller with a QUIC service whose SNI move.example is migrated to server 2, aioquic
// peers. Mid-transfer the client rebinds (new source port), moves to its second address, or
// rotates its connection ID and then rebinds; each 8 MiB transfer must complete, sha256-checked,
// on server 2, the backend the verdict chose, with the switch's NAT flows following the client to
// its new 4-tuple. Without QUIC-LB only the learnt CID is followed (a rebinding, not an address
// change); with CID steering switched off the same rebinding must break.
import assert from 'node:assert/strict';
import { requireQuicRoot, type ClientSummary } from '../lib/quic-root.ts';
import { NET, QuicCidBed } from '../lib/quic-steer-net.ts';
import type { QuicConnView } from '../../controller/quic-steer/quic-steer-app.ts';

const MB = 1 << 20;
const BIG = 8 * MB;
/** Mid-transfer: aioquic's 1 MiB flow-control window keeps the server from being far ahead, so megabytes follow. */
const AT = 3 * MB;

/** Both servers' request lines for the connection whose first client address is `addr`. */
function requests(bed: QuicCidBed, addr: string) {
  return (['s1', 's2'] as const).flatMap((n) => bed.servers[n].lines.filter((l) => l.event === 'request' && l.peers?.[0] === addr).map((l) => ({ server: n, ...l })));
}

/** Runs `fn` while collecting the app's 'followed' events. */
async function collectFollowed<T>(bed: QuicCidBed, fn: () => Promise<T>): Promise<{ value: T; followed: QuicConnView[] }> {
  const followed: QuicConnView[] = [];
  const on = (c: QuicConnView) => followed.push(c);
  bed.controller!.quic.on('followed', on);
  try { return { value: await fn(), followed }; } finally { bed.controller!.quic.off('followed', on); }
}

/** The transfer completed on server 2, which saw every client address the client used. */
async function onServer2(bed: QuicCidBed, s: ClientSummary): Promise<void> {
  assert.equal(s.server, 's2', 'the verdict chose server 2');
  const req = await bed.servers.s2.waitLine((l) => l.event === 'request' && l.peers?.[0] === s.addresses[0], 'the request line');
  assert.equal(req.match, true, 'server 2 received the client\'s matching sha256');
  assert.deepEqual(req.peers, s.addresses, 'server 2 saw each client address the client used, on the one connection');
  assert.deepEqual(requests(bed, s.addresses[0]!).map((r) => r.server), ['s2'], 'no other server saw the connection');
}

describe('QUIC connection-ID steering through stock OVS (aioquic peers, QUIC-LB servers)', function () {
  this.timeout(300000);
  let bed: QuicCidBed | undefined;

  before(async function () {
    await requireQuicRoot(this);
    bed = await QuicCidBed.create({ quicLb: true });
  });
  after(async () => { await bed?.destroy(); });

  it('NAT rebinding mid-transfer: the new port is followed by the learnt server CID to server 2, 8 MiB', async () => {
    const st = { ...bed!.controller!.quic.stats };
    const { value: s, followed } = await collectFollowed(bed!, () => bed!.download('move.example', BIG, ['--rebind-after', String(AT)]));
    assert.equal(s.addresses.length, 2);
    assert.notEqual(s.addresses[0], s.addresses[1], 'the source port changed');
    assert.equal(s.cids_used.length, 1, 'rebinding keeps the connection ID');
    assert.equal(s.first_dcids[1], s.cids_used[0], 'the new port\'s first datagram carried server 2\'s first SCID');
    await onServer2(bed!, s);
    assert.deepEqual(followed.map((c) => [c.client, c.backend, c.via, c.sni]), [[s.addresses[1], 'server2', 'learnt', 'move.example']]);
    const now = bed!.controller!.quic.stats;
    assert.equal(now.migrated - st.migrated, 1, 'one verdict: the new tuple was not decided again');
    assert.equal(now.cidLearnt - st.cidLearnt, 1, 'server 2\'s SCID learnt from its first answer');
    assert.equal(now.errors, 0);
  });

  it('client address change mid-transfer: the new address and CID are followed by QUIC-LB server ID to server 2, 8 MiB', async () => {
    const { value: s, followed } = await collectFollowed(bed!, () => bed!.download('move.example', BIG,
      ['--local-address', NET.client.ip, '--migrate-after', String(AT), '--new-address', NET.client.ip2]));
    assert.ok(s.addresses[0]!.startsWith(`${NET.client.ip}:`) && s.addresses[1]!.startsWith(`${NET.client.ip2}:`), s.addresses.join(' '));
    assert.equal(s.cids_used.length, 2, 'a new connection ID on the new path');
    // What makes QUIC-LB the one way to follow it: the new address never sent the learnt CID (RFC 9000 §9.5).
    // A learnt CID from a new address is a NAT rebinding, and the controller rightly follows it as one ('learnt').
    assert.equal(s.first_dcids[1], s.cids_used[1], 'the new address\'s first datagram carried the new CID');
    await onServer2(bed!, s);
    assert.deepEqual(followed.map((c) => [c.client, c.backend, c.via]), [[s.addresses[1], 'server2', 'quic-lb']]);
    assert.equal(bed!.controller!.quic.stats.errors, 0);
  });

  it('CID rotation by the client mid-transfer, then a rebinding: the unseen CID is followed by QUIC-LB server ID, 8 MiB', async () => {
    const { value: s, followed } = await collectFollowed(bed!, () => bed!.download('move.example', BIG,
      ['--rotate-cid-after', String(2 * MB), '--rebind-after', String(4 * MB)]));
    assert.deepEqual(s.actions.map((a) => a.action), ['rotate_cid', 'rebind']);
    assert.equal(s.cids_used.length, 2, 'the client rotated to the server\'s next CID');
    assert.notEqual(s.cids_used[0], s.cids_used[1]);
    assert.equal(s.first_dcids[1], s.cids_used[1], 'the new port\'s first datagram carried the rotated CID, never learnt');
    await onServer2(bed!, s);
    assert.deepEqual(followed.map((c) => [c.client, c.backend, c.via]), [[s.addresses[1], 'server2', 'quic-lb']]);
  });

  it('the old 4-tuple\'s flows idle out and the connection\'s records go with the last tuple', async function () {
    // Every tuple of the transfers above idles out within the service's idleTimeout (10 s): FLOW_REMOVED, awaited.
    const quic = bed!.controller!.quic;
    if (quic.size.tracked > 0) {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => { quic.off('closed', on); reject(new Error(`still tracked: ${JSON.stringify(quic.connections())}`)); }, 60000);
        const on = () => { if (quic.size.tracked === 0) { clearTimeout(t); quic.off('closed', on); resolve(); } };
        quic.on('closed', on);
      });
    }
    assert.deepEqual(quic.cids.size, { cids: 0, groups: 0 });
  });
});

describe('QUIC connection-ID steering without QUIC-LB (random server CIDs): only learnt CIDs are followed', function () {
  this.timeout(300000);
  let bed: QuicCidBed | undefined;

  before(async function () {
    await requireQuicRoot(this);
    bed = await QuicCidBed.create({ quicLb: false });
  });
  after(async () => { await bed?.destroy(); });

  it('NAT rebinding mid-transfer: followed by the server CID learnt from its first answer, 8 MiB on server 2', async () => {
    const { value: s, followed } = await collectFollowed(bed!, () => bed!.download('move.example', BIG, ['--rebind-after', String(AT)]));
    await onServer2(bed!, s);
    assert.deepEqual(followed.map((c) => [c.client, c.backend, c.via]), [[s.addresses[1], 'server2', 'learnt']]);
  });

  it('an address change with a new CID is not followed (the CID came encrypted, no server ID in it): dropped as unknown_cid', async () => {
    const before = bed!.controller!.quic.stats.dropped.unknown_cid;
    const { summary: s } = await bed!.run('move.example', BIG, ['--local-address', NET.client.ip, '--migrate-after', String(AT), '--new-address', NET.client.ip2], 20);
    assert.equal(s.ok, false);
    assert.equal(s.addresses.length, 2, 'it did move');
    assert.equal(s.first_dcids[1], s.cids_used[1], 'the new address\'s first datagram carried the new CID (the learnt one would be followed)');
    assert.ok(bed!.controller!.quic.stats.dropped.unknown_cid - before > 0, 'the new address\'s packets were dropped as unknown_cid');
    assert.equal(bed!.controller!.quic.stats.errors, 0);
  });
});

describe('QUIC connection-ID steering switched off (cidSteering: false): the same rebinding breaks', function () {
  this.timeout(300000);
  let bed: QuicCidBed | undefined;

  before(async function () {
    await requireQuicRoot(this);
    bed = await QuicCidBed.create({ cidSteering: false });
  });
  after(async () => { await bed?.destroy(); });

  it('a rebinding mid-transfer: the new port\'s short headers are dropped and the transfer never completes', async () => {
    const before = { ...bed!.controller!.quic.stats, dropped: { ...bed!.controller!.quic.stats.dropped } };
    const { summary: s, code } = await bed!.run('move.example', BIG, ['--rebind-after', String(AT)], 20);
    assert.equal(s.ok, false, 'the transfer must not complete without CID steering');
    assert.equal(code, 1);
    assert.match(s.error ?? '', /timeout/, 'it stalled after the rebinding');
    assert.equal(bed!.controller!.quic.stats.migrated - before.migrated, 1, 'it had been migrated to server 2');
    assert.equal(s.addresses.length, 2, 'it did rebind');
    assert.ok(s.bytes >= AT && s.bytes < BIG, `received ${s.bytes} bytes`);
    assert.ok(bed!.controller!.quic.stats.dropped.short_header - before.dropped.short_header > 0, 'the new port\'s packets were dropped');
    assert.equal(bed!.controller!.quic.stats.followedLearnt + bed!.controller!.quic.stats.followedQuicLb, 0);
    assert.deepEqual(requests(bed!, s.addresses[0]!), [], 'no server logged a finished request');
  });

  it('without a rebinding the same transfer completes (the bed itself works)', async () => {
    const s = await bed!.download('move.example', BIG, []);
    assert.equal(s.server, 's2');
  });
});
