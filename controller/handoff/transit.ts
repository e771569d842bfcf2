// Transit (a fabric of several switches): a connection lives on its client's switch, where it is
// intercepted and its NAT/shift flows sit. The other switches on its paths only carry its packets,
// but their service flows (steering by the service's and backends' addresses) would bring those
// packets here. The first such packet a switch sends is passed on towards its destination MAC (the
// forwarding app knows the next hop), and a transit flow for its exact addresses and ports carries
// the rest of that direction in the switch. A path change forgets every transit flow (they are
// learnt again along the new paths) and re-aims the connections' own flows on their switches.
import { OFP_NO_BUFFER } from '../openflow/index.ts';
import { ipOf, type ParsedFrame } from '../packet/index.ts';
import { dpidString, type SwitchConnection } from '../datapath/switch-connection.ts';
import { NONE, type Connection } from './connection.ts';
import type { EngineCore } from './engine-core.ts';
import { deleteTransitFlows, transitFlow } from './flow-plan.ts';

export class Transit {
  constructor(private readonly core: EngineCore) {}

  /** A packet of connection `c` from a switch that is not the connection's. */
  packetIn(c: Connection, sw: SwitchConnection, frame: ParsedFrame, inPort: number): void {
    const core = this.core;
    const dpid = core.shared.strings.get(dpidString(sw.features!.datapathId));
    const out = core.learning.portForMac(dpid, frame.eth.dst);
    if (out === undefined || out === inPort) {
      core.stats.transitDropped++;
      core.log.debug('a transit packet with nowhere to go; dropped', { conn: c.id, dpid, ethDst: frame.eth.dst, inPort });
      return;
    }
    const ip = ipOf(frame);
    const tcp = frame.tcp!;
    core.stats.transitPackets++;
    try {
      sw.send(transitFlow({ id: c.id, src: { ip: ip.src, port: tcp.srcPort }, dst: { ip: ip.dst, port: tcp.dstPort }, outPort: out, idleTimeout: c.service.idleTimeout }));
      sw.send({ type: 'packet_out', xid: 0, bufferId: OFP_NO_BUFFER, inPort, actions: [{ type: 'output', port: out }], data: frame.raw });
    } catch (e) { core.log.debug('transit flow not sent', { conn: c.id, dpid, error: (e as Error).message }); return; }
    if (!c.transit.includes(dpid)) c.transit = c.transit.concat([dpid]);
  }

  /** The connection ended: its transit flows go from every switch that has some. */
  forget(c: Connection): void {
    for (const dpid of c.transit) {
      const sw = this.core.switches.get(dpid);
      try { if (sw?.connected) sw.send(deleteTransitFlows(c.id)); } catch { /* gone: its flows time out */ }
    }
    c.transit = NONE;
  }

  /**
   * The fabric's paths changed (a link went down or came up): transit flows may point the wrong
   * way, so all go and are learnt again; a connection whose backend is now reached through
   * another port of its switch gets its flows again with that port.
   */
  pathsChanged(): void {
    const core = this.core;
    for (const sw of core.switches.values()) {
      try { if (sw.connected) sw.send(deleteTransitFlows()); } catch { /* reconciled when it returns */ }
    }
    let reaimed = 0;
    for (const c of core.table.all()) {
      c.transit = NONE;
      if (c.phase === 'closed') continue;
      const port = core.learning.portForMac(c.dpid, c.backend.mac);
      if (port === undefined || port === c.backend.ofport) continue;
      c.backend = core.shared.attached.get({ ...c.backend, ofport: port });
      if (c.flowsInstalled && c.phase !== 'closing') { core.send(c, core.reinstallMessages(c)); reaimed++; }
    }
    core.stats.transitReroutes++;
    core.log.info('fabric paths changed: transit flows forgotten, connections re-aimed', { reaimed });
  }
}
