// The fabric's topology model: links from probes and config, hosts only at edge ports, shortest
// paths with a deterministic tie-break, a loop-free spanning tree, and what a link or port going
// down takes with it.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Topology, portKey, type PortRef } from '../../controller/fabric/topology.ts';

const D = (n: number): string => n.toString(16).padStart(16, '0');
const A1 = D(0xa1), A2 = D(0xa2), A3 = D(0xa3), A4 = D(0xa4);
const ref = (dpid: string, port: number): PortRef => ({ dpid, port });
const H1 = '02:00:00:00:00:01', H2 = '02:00:00:00:00:02', H3 = '02:00:00:00:00:03';

/** Switches with ports 1..n up. */
function withSwitches(dpids: string[], ports = 4): Topology {
  const t = new Topology();
  for (const d of dpids) t.addSwitch(d, Array.from({ length: ports }, (_, i) => ({ port: i + 1, up: true })));
  return t;
}

/** The test bed's triangle: host on port 1, port 2 to the next switch, port 3 to the previous. */
function triangle(): Topology {
  const t = withSwitches([A1, A2, A3]);
  t.addLink(ref(A1, 2), ref(A2, 3), 0);
  t.addLink(ref(A2, 2), ref(A3, 3), 0);
  t.addLink(ref(A3, 2), ref(A1, 3), 0);
  return t;
}

/** Union-find check: the links form no cycle. */
function acyclic(links: { a: PortRef; b: PortRef }[]): boolean {
  const parent = new Map<string, string>();
  const find = (x: string): string => { while (parent.has(x) && parent.get(x) !== x) x = parent.get(x)!; return x; };
  for (const l of links) {
    const ra = find(l.a.dpid), rb = find(l.b.dpid);
    if (ra === rb) return false;
    parent.set(ra, rb);
  }
  return true;
}

/** Random graph: n switches, each link between distinct switches on fresh ports. */
const graph = fc.integer({ min: 1, max: 7 }).chain((n) => fc.record({
  n: fc.constant(n),
  edges: fc.array(fc.tuple(fc.nat({ max: n - 1 }), fc.nat({ max: n - 1 })), { maxLength: 14 }),
}, { noNullPrototype: true }));

function build(g: { n: number; edges: [number, number][] }, order?: number[]): Topology {
  const t = withSwitches(Array.from({ length: g.n }, (_, i) => D(i + 1)), 20);
  const links = g.edges.map(([x, y], i) => [ref(D(x + 1), 2 + i), ref(D(y + 1), 2 + i)] as const).filter(([a, b]) => a.dpid !== b.dpid);
  for (const i of order ?? links.map((_, j) => j)) if (links[i]) t.addLink(links[i][0], links[i][1], 0);
  return t;
}

describe('fabric topology', () => {
  it('learns a link from a probe in either direction, once, with both ends as link ports', () => {
    const t = withSwitches([A1, A2]);
    const r = t.addLink(ref(A1, 2), ref(A2, 3), 10);
    assert.equal(r.added, true);
    assert.deepEqual(t.addLink(ref(A2, 3), ref(A1, 2), 20).added, false, 'the reverse probe confirms the same link');
    assert.equal(t.activeLinks().length, 1);
    assert.equal(t.activeLinks()[0]!.seen, 20);
    assert.deepEqual(t.neighbour(A1, 2), ref(A2, 3));
    assert.deepEqual(t.neighbour(A2, 3), ref(A1, 2));
    assert.equal(t.isLinkPort(A1, 1), false);
    assert.equal(t.addLink(ref(A1, 4), ref(D(0xbad), 1), 0).added, false, 'a probe from a switch not held is no link');
    assert.equal(t.addLink(ref(A1, 4), ref(A1, 1), 0).added, false, 'a port looped back into its own switch is no link');
  });

  it('a port has one neighbour: a new link at a port replaces the old one', () => {
    const t = withSwitches([A1, A2, A3]);
    t.addLink(ref(A1, 2), ref(A2, 3), 0);
    const r = t.addLink(ref(A1, 2), ref(A3, 3), 1);
    assert.equal(r.added, true);
    assert.equal(r.replaced.length, 1);
    assert.deepEqual(t.activeLinks().map((l) => `${portKey(l.a)}-${portKey(l.b)}`), [`${A1}:2-${A3}:3`]);
    assert.equal(t.isLinkPort(A2, 3), false);
  });

  it('shortest paths in the triangle are direct; with a link down they go round by the third switch', () => {
    const t = triangle();
    assert.deepEqual(t.path(A1, A2), [{ dpid: A1, outPort: 2 }, { dpid: A2 }]);
    assert.equal(t.nextHop(A2, A1), 3);
    assert.equal(t.nextHop(A1, A1), undefined);
    const v = t.version;
    const r = t.setPort(A1, 2, false);
    assert.ok(r.linkDown, 'the link at the port went');
    assert.ok(t.version > v);
    assert.deepEqual(t.path(A1, A2), [{ dpid: A1, outPort: 3 }, { dpid: A3, outPort: 3 }, { dpid: A2 }]);
    assert.deepEqual(t.path(A2, A1), [{ dpid: A2, outPort: 2 }, { dpid: A3, outPort: 2 }, { dpid: A1 }]);
    assert.equal(t.distance(A2, A1), 2);
    // Up again: the link comes back only when a probe crosses it again.
    t.setPort(A1, 2, true);
    assert.equal(t.distance(A1, A2), 2);
    t.addLink(ref(A2, 3), ref(A1, 2), 5);
    assert.equal(t.distance(A1, A2), 1);
  });

  it('ties break by the lowest neighbour datapath id, then the lowest port, whatever the order links were learnt in', () => {
    // A square a1-a2-a3-a4-a1, plus a second link a1-a2: from a1 to a3 there are two equal paths.
    const links: [PortRef, PortRef][] = [
      [ref(A1, 2), ref(A2, 2)], [ref(A2, 3), ref(A3, 2)], [ref(A3, 3), ref(A4, 2)], [ref(A4, 3), ref(A1, 3)], [ref(A1, 4), ref(A2, 4)],
    ];
    fc.assert(fc.property(fc.shuffledSubarray([0, 1, 2, 3, 4], { minLength: 5, maxLength: 5 }), (order) => {
      const t = withSwitches([A1, A2, A3, A4]);
      for (const i of order) t.addLink(links[i]![0], links[i]![1], 0);
      assert.equal(t.nextHop(A1, A3), 2, 'via a2 (lower than a4), on port 2 (lower than 4)');
      assert.equal(t.nextHop(A3, A1), 2, 'via a2 again');
      assert.deepEqual(t.path(A1, A3)!.map((h) => h.dpid), [A1, A2, A3]);
      assert.deepEqual([...t.treePorts()].sort(), [`${A1}:2`, `${A2}:2`, `${A1}:3`, `${A4}:3`, `${A2}:3`, `${A3}:2`].sort());
    }));
  });

  it('paths and the spanning tree do not depend on the order links were learnt in (random graphs)', () => {
    fc.assert(fc.property(graph.chain((g) => fc.tuple(fc.constant(g), fc.shuffledSubarray([...g.edges.keys()], { minLength: g.edges.length, maxLength: g.edges.length }))), ([g, order]) => {
      const a = build(g);
      const b = build(g, order);
      assert.deepEqual([...a.treePorts()].sort(), [...b.treePorts()].sort());
      for (const x of a.switchIds()) for (const y of a.switchIds()) assert.equal(a.nextHop(x, y), b.nextHop(x, y));
    }), { numRuns: 200 });
  });

  it('the spanning tree has no cycle and spans every connected part; paths are shortest and end where they should', () => {
    fc.assert(fc.property(graph, (g) => {
      const t = build(g);
      const tree = t.treeLinks();
      assert.ok(acyclic(tree), 'no cycle in the tree');
      // Switches in one part: reachable by links ⇔ reachable by tree links.
      const parts = new Set(t.switchIds().map((x) => t.switchIds().filter((y) => t.distance(x, y) !== undefined).join(',')));
      assert.equal(tree.length, t.switchIds().length - parts.size, 'a tree per connected part');
      for (const x of t.switchIds()) for (const y of t.switchIds()) {
        const p = t.path(x, y);
        const d = t.distance(x, y);
        if (d === undefined) { assert.equal(p, undefined); continue; }
        assert.equal(p!.length, d + 1);
        assert.equal(p![0]!.dpid, x);
        assert.equal(p![p!.length - 1]!.dpid, y);
        for (let i = 0; i + 1 < p!.length; i++) assert.equal(t.neighbour(p![i]!.dpid, p![i]!.outPort!)!.dpid, p![i + 1]!.dpid);
      }
    }), { numRuns: 300 });
  });

  it('a broadcast flooded by floodPorts reaches every switch of its part exactly once', () => {
    fc.assert(fc.property(graph, fc.nat(), (g, pick) => {
      const t = build(g);
      const start = t.switchIds()[pick % g.n]!;
      // Port 1 of every switch is an edge port (links use 2..).
      const visits = new Map<string, number>();
      const queue: PortRef[] = [ref(start, 1)];
      let steps = 0;
      while (queue.length) {
        const at = queue.shift()!;
        assert.ok(++steps < 1000, 'the flood ends');
        const f = t.floodPorts(at.dpid, at.port);
        if (f.drop) continue;
        visits.set(at.dpid, (visits.get(at.dpid) ?? 0) + 1);
        for (const p of f.ports) { const n = t.neighbour(at.dpid, p); if (n) queue.push(n); }
      }
      for (const x of t.switchIds()) assert.equal(visits.get(x), t.distance(start, x) === undefined ? undefined : 1, `switch ${x}`);
    }), { numRuns: 300 });
  });

  it('floods to edge ports and tree ports, never back in, and drops a copy that came over a link outside the tree', () => {
    const t = triangle();
    // Tree from a1 (lowest): a1:2-a2:3 and a1:3-a3:2; the link a2:2-a3:3 is left out.
    assert.deepEqual(t.floodPorts(A1, 1), { drop: false, ports: [2, 3, 4] });
    assert.deepEqual(t.floodPorts(A2, 3), { drop: false, ports: [1, 4] });
    assert.deepEqual(t.floodPorts(A2, 2), { drop: true, ports: [] });
    t.setPort(A2, 4, false);
    assert.deepEqual(t.floodPorts(A2, 1), { drop: false, ports: [3] }, 'a down port gets nothing');
  });

  it('learns hosts at edge ports only; a link found at a port forgets the hosts learnt there', () => {
    const t = withSwitches([A1, A2]);
    assert.equal(t.learnHost(H1, A1, 1, 0), 'new');
    assert.equal(t.learnHost(H1, A1, 1, 1), 'same');
    assert.equal(t.learnHost(H2, A1, 2, 0), 'new', 'port 2 looks like an edge port until a probe says otherwise');
    const r = t.addLink(ref(A1, 2), ref(A2, 2), 0);
    assert.deepEqual(r.hosts, [H2]);
    assert.equal(t.host(H2), undefined);
    assert.equal(t.learnHost(H2, A1, 2, 0), 'refused', 'frames at a link port are in transit');
    assert.equal(t.learnHost(H2, A2, 1, 0), 'new');
    assert.equal(t.learnHost(H1, A2, 3, 5), 'moved');
    assert.equal(t.portTowardsHost(A1, H1), 2, 'towards the host it moved to');
    assert.equal(t.portTowardsHost(A2, H1), 3);
    assert.equal(t.learnHost(H3, D(0xbad), 1, 0), 'refused', 'on a switch not held');
  });

  it('holds at most maxHosts hosts, forgetting the oldest', () => {
    const t = new Topology(3);
    t.addSwitch(A1, [{ port: 1, up: true }]);
    for (let i = 0; i < 5; i++) t.learnHost(`02:00:00:00:01:0${i}`, A1, 1, i);
    assert.deepEqual(t.hosts().map((h) => h.mac), ['02:00:00:00:01:02', '02:00:00:00:01:03', '02:00:00:00:01:04']);
  });

  it('a port going down takes its link and its hosts; a switch going away takes its learnt links', () => {
    const t = triangle();
    t.learnHost(H1, A1, 1, 0);
    const down = t.setPort(A1, 1, false);
    assert.deepEqual(down.hosts, [H1]);
    assert.equal(down.linkDown, undefined);
    assert.equal(t.setPort(A1, 1, false).changed, false, 'no change twice');
    const lost = t.removeSwitch(A3);
    assert.equal(lost.length, 2);
    assert.equal(t.activeLinks().length, 1);
    assert.equal(t.distance(A1, A3), undefined);
    t.removePort(A2, 3);
    assert.equal(t.activeLinks().length, 0);
    assert.equal(t.portInfo(A2, 3), undefined);
  });

  it('expires learnt links not confirmed in time, never configured ones', () => {
    const t = withSwitches([A1, A2, A3]);
    t.addLink(ref(A1, 2), ref(A2, 3), 0);
    t.addLink(ref(A2, 2), ref(A3, 3), 0, 'config');
    t.addLink(ref(A2, 3), ref(A1, 2), 3000);
    assert.deepEqual(t.expireLinks(4000, 3500), []);
    const gone = t.expireLinks(7000, 3500);
    assert.equal(gone.length, 1);
    assert.equal(gone[0]!.source, 'lldp');
    assert.equal(t.activeLinks().length, 1);
  });

  it('configured links: known before their switches, usable while both are here with ports up, not overridden by probes', () => {
    const t = new Topology();
    t.addLink(ref(A1, 2), ref(A2, 3), 0, 'config');
    assert.equal(t.isLinkPort(A1, 2), true, 'a configured link port is never a host port');
    assert.equal(t.activeLinks().length, 0);
    t.addSwitch(A1, [{ port: 1, up: true }, { port: 2, up: true }]);
    t.addSwitch(A2, [{ port: 3, up: false }]);
    assert.equal(t.activeLinks().length, 0);
    const up = t.setPort(A2, 3, true);
    assert.ok(up.linkUp, 'usable now');
    assert.equal(t.activeLinks().length, 1);
    t.addSwitch(A3, [{ port: 1, up: true }]);
    assert.equal(t.addLink(ref(A3, 1), ref(A1, 2), 0).added, false, 'LLDP does not override the operator');
    const down = t.setPort(A1, 2, false);
    assert.ok(down.linkDown);
    assert.equal(t.allLinks().length, 1, 'the configured link stays known');
    t.removeSwitch(A2);
    assert.equal(t.allLinks().length, 1);
  });
});
