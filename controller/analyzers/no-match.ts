// "The IDS has seen the held segment and no verdict rule matched": turns the no-match marker
// (the catch-all rule of snort-rules/no-match.rules) into the service's default verdict at once,
// instead of after the verdict timeout, without ever letting it beat a verdict for the same packet.
import { flowKeyString, type FlowKey } from './types.ts';

interface Held { connId: number; key: string; seenBy: Set<string>; scheduled: boolean }

export interface NoMatchStats { markers: number; applied: number; notHeld: number; afterVerdict: number; lateVerdicts: number }

/**
 * Ordering argument (docs/analyzers.md): the IDS ranks the catch-all below every verdict rule and
 * writes a packet's alerts in rank order, from one thread, to one socket; the socket keeps that
 * order. So when the marker is read, every verdict alert of that packet was read before it and has
 * already reached the engine (whose 'verdict' event calls decided()). The marker still acts only
 * after the current read batch (`defer`), and only when every IDS that sees the segment has sent
 * it: a verdict read meanwhile, from any source, cancels it.
 */
export class NoMatchTracker {
  private readonly byPacket = new Map<string, Held>();
  private readonly byConn = new Map<number, Held>();
  /** Packets resolved by the marker, to recognise a verdict that came after it (a rule ranked wrongly). */
  private readonly resolved = new Set<string>();
  readonly stats: NoMatchStats = { markers: 0, applied: 0, notHeld: 0, afterVerdict: 0, lateVerdicts: 0 };

  constructor(
    /** The IDS kinds that see held segments ('snort', 'suricata'): each must send the marker. */
    private readonly required: readonly string[],
    private readonly apply: (connId: number, sources: string[]) => void,
    private readonly defer: (fn: () => void) => void = (fn) => { setImmediate(fn); },
    private readonly limit = 65536,
  ) {}

  /** A held segment was sent to the IDS port. */
  held(connId: number, flow: FlowKey, seq: number): void {
    this.decided(connId);
    const h: Held = { connId, key: packetKey(flow, seq), seenBy: new Set(), scheduled: false };
    this.byPacket.set(h.key, h);
    this.byConn.set(connId, h);
    // Entries leave on a verdict or close; the limit only guards against a leak.
    if (this.byConn.size > this.limit) this.decided(this.byConn.keys().next().value!);
  }

  /** Any verdict for the connection (an alert, the timeout, the API) or its end: the marker no longer matters. */
  decided(connId: number): void {
    const h = this.byConn.get(connId);
    if (!h) return;
    this.byConn.delete(connId);
    this.byPacket.delete(h.key);
  }

  /** A verdict alert about a packet: true when the marker had already decided that packet. */
  verdictAlert(flow: FlowKey, seq: number | undefined): boolean {
    if (seq === undefined || !this.resolved.has(packetKey(flow, seq))) return false;
    this.stats.lateVerdicts++;
    return true;
  }

  /** The marker from `source` about the packet (flow, seq). */
  marker(source: string, flow: FlowKey | undefined, seq: number | undefined): 'pending' | 'waiting' | 'not held' {
    this.stats.markers++;
    const h = flow && seq !== undefined ? this.byPacket.get(packetKey(flow, seq)) : undefined;
    if (!h) { this.stats.notHeld++; return 'not held'; }
    h.seenBy.add(source);
    if (!this.required.every((r) => h.seenBy.has(r))) return 'waiting';
    if (h.scheduled) return 'pending';
    h.scheduled = true;
    this.defer(() => {
      if (this.byConn.get(h.connId) !== h) { this.stats.afterVerdict++; return; }
      this.decided(h.connId);
      this.resolved.add(h.key);
      if (this.resolved.size > 4096) this.resolved.delete(this.resolved.values().next().value!);
      this.stats.applied++;
      this.apply(h.connId, [...h.seenBy]);
    });
    return 'pending';
  }

  get size(): number { return this.byConn.size; }
}

function packetKey(flow: FlowKey, seq: number): string { return `${flowKeyString(flow)}#${seq >>> 0}`; }
