// The fabric's flows as pure functions of the topology: the Flow-Mods themselves, the flows along a
// path, recomputation after a change (loop-free whatever links go), and adoption after a restart.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Topology, type PortRef } from '../../controller/fabric/topology.ts';
import {
  adoptPathFlows, deleteFlowsToPortMod, deletePathFlowMod, flowsAlongPath, hostsFromFlows, lldpTrapFlow, pathFlowMod, planReconcile,
  LLDP_COOKIE, LLDP_PRIORITY, PATH_COOKIE, type FlowTable,
} from '../../controller/fabric/path-plan.ts';
import { encodeMessage, decodeMessage, OFPFF, OFPP, OFPCML_NO_BUFFER, type FlowStats, type OfpMessage } from '../../controller/openflow/index.ts';
import { cookieApp, APP_ID } from '../../controller/cookies.ts';

const D = (n: number): string => n.toString(16).padStart(16, '0');
const A1 = D(0xa1), A2 = D(0xa2), A3 = D(0xa3);
const ref = (dpid: string, port: number): PortRef => ({ dpid, port });
const H1 = '02:00:00:00:00:01', H2 = '02:00:00:00:00:02', H3 = '02:00:00:00:00:03';
const OPTS = { priority: 10, idleTimeout: 60, hardTimeout: 0 };
type FM = Extract<OfpMessage, { type: 'flow_mod' }>;

function triangle(): Topology {
  const t = new Topology();
  for (const d of [A1, A2, A3]) t.addSwitch(d, [1, 2, 3].map((port) => ({ port, up: true })));
  t.addLink(ref(A1, 2), ref(A2, 3), 0);
  t.addLink(ref(A2, 2), ref(A3, 3), 0);
  t.addLink(ref(A3, 2), ref(A1, 3), 0);
  t.learnHost(H1, A1, 1, 0);
  t.learnHost(H2, A2, 1, 0);
  t.learnHost(H3, A3, 1, 0);
  return t;
}

/** Installs every host's flows on every switch, as the app would after traffic from everywhere. */
function installAll(t: Topology): FlowTable {
  const table: FlowTable = new Map(t.switchIds().map((d) => [d, new Map()]));
  for (const h of t.hosts()) for (const d of t.switchIds()) for (const f of flowsAlongPath(t, d, h.mac) ?? []) table.get(f.dpid)!.set(f.mac, f.port);
  return table;
}

function apply(table: FlowTable, plan: ReturnType<typeof planReconcile>): void {
  for (const f of plan.set) table.get(f.dpid)!.set(f.mac, f.port);
  for (const r of plan.remove) table.get(r.dpid)?.delete(r.mac);
}

/** Follows the installed flows for `mac` from `from`: the switch it ends at, or 'loop'. */
function follow(t: Topology, table: FlowTable, from: string, mac: string): string | 'loop' | 'drop' {
  let at = from;
  for (let i = 0; i < 20; i++) {
    const port = table.get(at)?.get(mac);
    if (port === undefined) return 'drop';
    const h = t.host(mac);
    if (h && h.dpid === at && h.port === port) return at;
    const n = t.neighbour(at, port);
    if (!n || !t.portInfo(at, port)?.up) return 'drop';
    at = n.dpid;
  }
  return 'loop';
}

describe('fabric path plan', () => {
  it('a forwarding flow: table 0, eth_dst only, the fabric cookie, idle timeout, FLOW_REMOVED; it encodes', () => {
    const m = pathFlowMod({ dpid: A1, mac: H2, port: 2 }, OPTS);
    assert.equal(m.command, 'add');
    assert.equal(m.tableId, 0);
    assert.equal(m.priority, 10);
    assert.equal(cookieApp(m.cookie), APP_ID.fabric);
    assert.equal(m.cookie, PATH_COOKIE);
    assert.deepEqual(m.match, { ethDst: H2 });
    assert.equal(m.idleTimeout, 60);
    assert.equal(m.flags, OFPFF.SEND_FLOW_REM);
    assert.deepEqual(m.instructions, [{ type: 'apply_actions', actions: [{ type: 'output', port: 2 }] }]);
    for (const msg of [m, lldpTrapFlow(), deletePathFlowMod(H2, 10), deleteFlowsToPortMod(3)]) {
      const back = decodeMessage(encodeMessage(msg));
      assert.ok(back.ok, msg.command);
    }
  });

  it('LLDP goes to the controller in full, above every other flow of table 0', () => {
    const m = lldpTrapFlow();
    assert.deepEqual(m.match, { ethType: 0x88cc });
    assert.equal(m.cookie, LLDP_COOKIE);
    assert.equal(m.priority, LLDP_PRIORITY);
    assert.ok(LLDP_PRIORITY > 210, 'above the service steering flows');
    assert.deepEqual(m.instructions, [{ type: 'apply_actions', actions: [{ type: 'output', port: OFPP.CONTROLLER, maxLen: OFPCML_NO_BUFFER }] }]);
  });

  it('deletes: one host on one switch exactly, or whatever leads out of a port', () => {
    const d = deletePathFlowMod(H2, 10) as FM;
    assert.equal(d.command, 'delete_strict');
    assert.equal(d.priority, 10);
    assert.deepEqual(d.match, { ethDst: H2 });
    const p = deleteFlowsToPortMod(3) as FM;
    assert.equal(p.command, 'delete');
    assert.equal(p.outPort, 3);
    assert.equal(p.cookie, PATH_COOKIE);
  });

  it('flows along a path: the host\'s own switch first, then back to the entry switch', () => {
    const t = triangle();
    assert.deepEqual(flowsAlongPath(t, A1, H2), [{ dpid: A2, mac: H2, port: 1 }, { dpid: A1, mac: H2, port: 2 }]);
    assert.deepEqual(flowsAlongPath(t, A2, H2), [{ dpid: A2, mac: H2, port: 1 }]);
    assert.equal(flowsAlongPath(t, A1, '02:00:00:00:00:99'), undefined, 'unknown host');
    t.setPort(A1, 2, false);
    assert.deepEqual(flowsAlongPath(t, A1, H2), [{ dpid: A2, mac: H2, port: 1 }, { dpid: A3, mac: H2, port: 3 }, { dpid: A1, mac: H2, port: 3 }]);
    t.setPort(A1, 3, false);
    assert.equal(flowsAlongPath(t, A1, H2), undefined, 'no path left');
  });

  it('a link going down re-points the flows that used it, and gives the new path its flows, nearest to the host first', () => {
    const t = triangle();
    const table: FlowTable = new Map([[A1, new Map([[H2, 2]])], [A2, new Map([[H2, 1]])], [A3, new Map()]]);
    assert.deepEqual(planReconcile(t, table), { set: [], remove: [] }, 'nothing to do when nothing changed');
    t.setPort(A1, 2, false);
    t.setPort(A2, 3, false);
    const plan = planReconcile(t, table);
    assert.deepEqual(plan.set, [{ dpid: A3, mac: H2, port: 3 }, { dpid: A1, mac: H2, port: 3 }]);
    assert.deepEqual(plan.remove, []);
  });

  it('removes flows whose host is unreachable, and those of unknown hosts only when their port is down', () => {
    const t = triangle();
    const table: FlowTable = new Map([[A1, new Map([[H2, 2], ['02:00:00:00:00:77', 1], ['02:00:00:00:00:78', 3]])], [A2, new Map()], [A3, new Map()]]);
    t.setPort(A1, 1, false);
    t.removeSwitch(A2);
    const plan = planReconcile(t, table);
    assert.deepEqual(plan.remove.sort((x, y) => (x.mac < y.mac ? -1 : 1)), [{ dpid: A1, mac: H2 }, { dpid: A1, mac: '02:00:00:00:00:77' }]);
  });

  it('`macs` limits the work to some hosts', () => {
    const t = triangle();
    const table = installAll(t);
    t.learnHost(H3, A1, 1, 1); // H3 moved next to H1 (a shared edge port, as through a hub)
    t.learnHost(H2, A3, 1, 1); // and H2 to a3
    const onlyH3 = planReconcile(t, table, new Set([H3]));
    assert.ok(onlyH3.set.length > 0 && onlyH3.set.every((f) => f.mac === H3));
  });

  it('property: after any links and ports go down, recomputed flows never loop and reach every host still reachable', () => {
    const LINK_PORTS: [string, number][] = [[A1, 2], [A1, 3], [A2, 2], [A2, 3], [A3, 2], [A3, 3]];
    fc.assert(fc.property(fc.subarray(LINK_PORTS), fc.boolean(), (down, stepwise) => {
      const t = triangle();
      const table = installAll(t);
      for (const [d, p] of down) {
        t.setPort(d, p, false);
        if (stepwise) apply(table, planReconcile(t, table));
      }
      apply(table, planReconcile(t, table));
      for (const h of t.hosts()) for (const from of t.switchIds()) {
        const end = follow(t, table, from, h.mac);
        assert.notEqual(end, 'loop', `flows for ${h.mac} from ${from} loop`);
        if (table.get(from)?.has(h.mac)) assert.equal(end, h.dpid, `flows for ${h.mac} from ${from} end at ${end}`);
        if (t.distance(from, h.dpid) === undefined) assert.equal(table.get(from)?.has(h.mac), false, 'an unreachable host keeps no flow');
      }
    }), { numRuns: 200 });
  });

  it('adopts its forwarding flows from a switch\'s flow stats, and reads hosts from those at edge ports', () => {
    const stat = (m: FM): FlowStats => ({ tableId: m.tableId, durationSec: 1, durationNsec: 0, priority: m.priority, idleTimeout: m.idleTimeout, hardTimeout: m.hardTimeout,
      flags: m.flags, cookie: m.cookie, packetCount: 0n, byteCount: 0n, match: m.match, instructions: m.instructions });
    const flows = [pathFlowMod({ dpid: A1, mac: H1, port: 1 }, OPTS), pathFlowMod({ dpid: A1, mac: H2, port: 2 }, OPTS), lldpTrapFlow()].map((m) => stat(m as FM));
    const adopted = adoptPathFlows(flows);
    assert.deepEqual([...adopted], [[H1, 1], [H2, 2]]);
    const t = new Topology();
    t.addSwitch(A1, [1, 2].map((port) => ({ port, up: true })));
    t.addSwitch(A2, [1].map((port) => ({ port, up: true })));
    t.addLink(ref(A1, 2), ref(A2, 1), 0);
    assert.deepEqual(hostsFromFlows(t, A1, adopted), [{ mac: H1, port: 1 }], 'port 2 is a link: H2 lives elsewhere');
  });
});
