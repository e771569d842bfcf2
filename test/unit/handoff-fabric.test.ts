// The handoff's parts for a fabric. Transit flows (a switch that only carries a connection): their
// shape, that they survive the codec and ovs-ofctl reads them, and that a reconnecting switch's
// transit flows are dropped rather than adopted as connections. VLANs: a move across them is refused
// unless the service allows it.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { deleteTransitFlows, PRIORITY, TABLE, transitFlow } from '../../controller/handoff/flow-plan.ts';
import { connCookie, connIdOf, connRoleOf, CONN_ROLE } from '../../controller/cookies.ts';
import { decodeMessage, encodeMessage, type OfpMessage } from '../../controller/openflow/index.ts';
import { EngineBed, asFlowStats, CLIENT, S1, S2, outputs } from '../lib/scripted-switch.ts';

const fm = (m: OfpMessage) => { if (m.type !== 'flow_mod') throw new Error('not a flow_mod'); return m; };
const OFCTL = ['/usr/local/bin/ovs-ofctl', '/usr/bin/ovs-ofctl'].find((p) => existsSync(p));

describe('transit flows (fabric)', () => {
  it('one direction of one connection, by its exact addresses and ports, above the service\'s steer and copy flows, out of one port', () => {
    const f = fm(transitFlow({ id: 7, src: { ip: '10.0.0.3', port: 5001 }, dst: { ip: '10.0.0.2', port: 40000 }, outPort: 24, idleTimeout: 60 }));
    assert.deepEqual([f.tableId, f.priority, f.idleTimeout, f.flags ?? 0], [TABLE.steer, PRIORITY.transit, 60, 0]);
    assert.ok(PRIORITY.transit > PRIORITY.flagCopy && PRIORITY.transit > PRIORITY.steer);
    assert.deepEqual([connIdOf(f.cookie), connRoleOf(f.cookie)], [7, CONN_ROLE.transit]);
    assert.deepEqual(f.match, { ethType: 0x0800, ipProto: 6, ipv4Src: '10.0.0.3', ipv4Dst: '10.0.0.2', tcpSrc: 5001, tcpDst: 40000 });
    assert.deepEqual(f.instructions, [{ type: 'apply_actions', actions: [{ type: 'output', port: 24 }] }]);
    const v6 = fm(transitFlow({ id: 7, src: { ip: 'fd00::2', port: 40000 }, dst: { ip: 'fd00::1', port: 5001 }, outPort: 20, idleTimeout: 60 }));
    assert.deepEqual([v6.match.ethType, v6.match.ipv6Src, v6.match.ipv6Dst], [0x86dd, 'fd00::2', 'fd00::1']);
    for (const m of [f, v6, deleteTransitFlows(7), deleteTransitFlows()]) {
      const r = decodeMessage(encodeMessage({ ...m, xid: 1 }));
      assert.ok(r.ok && r.value.type === 'flow_mod');
    }
  });

  it('deleting one connection\'s transit flows selects that connection\'s role only; deleting all selects the role of every connection', () => {
    const one = fm(deleteTransitFlows(7));
    const all = fm(deleteTransitFlows());
    const selects = (d: typeof one, cookie: bigint) => (cookie & d.cookieMask!) === (d.cookie & d.cookieMask!);
    assert.ok(selects(one, connCookie(7, CONN_ROLE.transit)));
    for (const other of [connCookie(8, CONN_ROLE.transit), connCookie(7, CONN_ROLE.main), connCookie(7, CONN_ROLE.freeze)]) assert.ok(!selects(one, other));
    for (const id of [1, 7, 99999]) assert.ok(selects(all, connCookie(id, CONN_ROLE.transit)));
    for (const role of [CONN_ROLE.main, CONN_ROLE.flags, CONN_ROLE.freeze, CONN_ROLE.freezeCopy]) assert.ok(!selects(all, connCookie(7, role)));
  });

  it('ovs-ofctl reads a transit flow as the plan means it', function () {
    if (!OFCTL) this.skip();
    const f = transitFlow({ id: 7, src: { ip: '10.0.0.3', port: 5001 }, dst: { ip: '10.0.0.2', port: 40000 }, outPort: 24, idleTimeout: 60 });
    const text = execFileSync(OFCTL!, ['ofp-print', encodeMessage({ ...f, xid: 1 }).toString('hex')], { encoding: 'utf8' });
    assert.match(text, /ADD priority=220,tcp,nw_src=10\.0\.0\.3,nw_dst=10\.0\.0\.2,tp_src=5001,tp_dst=40000 cookie:0x1004000000000007 idle:60 actions=output:24\n/);
  });

  it('a reconnecting switch\'s transit flows are deleted, not adopted as connections', async () => {
    const bed = await EngineBed.create();
    try {
      const flows = asFlowStats([transitFlow({ id: 42, src: { ip: '10.0.0.3', port: 5001 }, dst: { ip: '10.0.0.2', port: 40000 }, outPort: 3, idleTimeout: 60 })]);
      await bed.engine.switchReady(bed.sw.asChannel(), flows);
      assert.equal(bed.engine.table.size, 0, 'no connection adopted from a transit flow');
      const deletes = bed.sw.flowMods().filter((m) => m.command === 'delete' && connRoleOf(m.cookie) === CONN_ROLE.transit);
      assert.deepEqual(deletes, [deleteTransitFlows()]);
    } finally { bed.engine.stop(); }
  });
});

describe('a move across fabric VLANs', () => {
  const HELD = { flags: { ack: true, psh: true }, seq: 1001, ack: 5001, payload: 'hello' };
  /** A held connection with server 1 seen in VLAN 10 and server 2 in `s2Vlan`. */
  async function heldWithVlans(s2Vlan: number, service: Record<string, unknown> = {}): Promise<{ bed: EngineBed; id: number }> {
    const bed = await EngineBed.create({ service });
    const id = bed.handshake();
    // As the fabric knows them (its host table gives each host its access port's VLAN).
    const seen = Date.now();
    bed.learning.learnHost(S1.ip, { mac: S1.mac, dpid: '00000000000000a1', port: S1.ofport, seen, vlan: 10 });
    bed.learning.learnHost(S2.ip, { mac: S2.mac, dpid: '00000000000000a1', port: S2.ofport, seen, vlan: s2Vlan });
    bed.sw.take();
    bed.from(CLIENT, S1, HELD);
    return { bed, id };
  }

  it('a MIGRATE verdict to a backend in another VLAN fails, naming both VLANs; the held segment goes on to server 1', async () => {
    const { bed, id } = await heldWithVlans(20);
    try {
      const failed = bed.waitEvent('migration_failed');
      bed.engine.verdict(id, { verdict: 'MIGRATE', source: 'test' });
      const [, info] = await failed as [unknown, { why: string }];
      assert.match(info.why, /backend server2 is in VLAN 20, the service's primary \(server1\) in VLAN 10: a move across VLANs needs "crossVlan": true/);
      await new Promise((r) => setImmediate(r));
      assert.ok(outputs(bed.sw.take()).some((o) => o.tcp?.payload === 'hello'), 'released towards server 1');
      assert.equal(bed.conn(id)!.backend, 'server1');
      await assert.rejects(bed.engine.migrate(id, 'server2'), (e: Error & { status?: number }) => e.status === 409 && /VLAN 20/.test(e.message));
    } finally { bed.engine.stop(); }
  });

  it('the same VLAN, or "crossVlan": true, moves as usual', async () => {
    for (const [vlan, service] of [[10, {}], [20, { crossVlan: true }]] as const) {
      const { bed, id } = await heldWithVlans(vlan, service);
      try {
        bed.engine.verdict(id, { verdict: 'MIGRATE', source: 'test' });
        await new Promise((r) => setImmediate(r));
        const [replay] = outputs(bed.sw.take());
        assert.deepEqual([replay?.tcp?.flags, replay?.tcp?.dst], ['syn', `${S2.ip}:${S2.port}`], `VLAN ${vlan} ${JSON.stringify(service)}: the SYN is replayed to server 2`);
      } finally { bed.engine.stop(); }
    }
  });
});
