/**
 * The one interface every traffic analyzer (Snort unixsock, Suricata EVE, built-in matcher)
 * presents to the handoff engine: a stream of Alerts, each possibly carrying a verdict.
 */
import type { ParsedFrame } from '../packet/index.ts';

export type Verdict = 'MIGRATE' | 'FORWARD';

/** The 5-tuple (TCP/UDP) as seen in the alerted packet, i.e. in that packet's direction. */
export interface FlowKey { srcIp: string; srcPort: number; dstIp: string; dstPort: number }

export interface Alert {
  source: 'snort' | 'suricata' | 'builtin';
  /** From msg/signature starting with MIGRATE or FORWARD (see verdictOf). */
  verdict?: Verdict;
  /** The rule msg as the IDS sent it (Snort 3's surrounding quotes removed). */
  msg: string;
  gid: number;
  sid: number;
  rev: number;
  classification?: number | string;
  priority?: number;
  /** Filled from the alerted frame when the IDS sent one (else from the IDS's 5-tuple fields). */
  flow?: FlowKey;
  seq?: number;
  ack?: number;
  payloadLength?: number;
  time: Date;
}

export interface AlertSource {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  on(ev: 'alert', fn: (a: Alert) => void): this;
  /** Monotonic counters (received, alerts, bad_*, ...), for metrics and tests. */
  readonly stats: Record<string, number>;
}

/**
 * What the socket sources also emit, for analyzer health (health.ts): 'activity' (kind) on every
 * valid record (an alert, or a Suricata EVE `stats` record: the heartbeat), and 'peers' (n) when
 * the number of connected writers changes (Suricata's unix_stream socket only: a datagram socket
 * cannot tell).
 */
export type ActivityKind = 'alert' | 'heartbeat' | 'other';

/**
 * The verdict a rule message announces: MIGRATE or FORWARD as a case-insensitive prefix, after
 * whitespace and surrounding quotes are stripped (Snort 3 sends msg with its quotes). A plain
 * prefix, as documented for rule authors: "MIGRATE to server3" and "MIGRATE_web" both count.
 */
export function verdictOf(msg: string): Verdict | undefined {
  if (typeof msg !== 'string') return undefined;
  const m = /^(migrate|forward)/i.exec(stripQuotes(msg));
  if (!m) return undefined;
  return m[1]!.toUpperCase() as Verdict;
}

/**
 * Whether a rule message is the no-match marker: `SEEN` as a case-insensitive prefix, like a
 * verdict. The catch-all rule in snort-rules/no-match.rules alerts with it on every client data
 * segment, ranked below every verdict rule, so "SEEN alone" means "inspected, no verdict rule
 * matched" (docs/analyzers.md, "Learning quickly that nothing matched").
 */
export function isNoMatchMarker(msg: string): boolean {
  return typeof msg === 'string' && /^seen(\b|_)/i.test(stripQuotes(msg));
}

/** Trims whitespace and one pair of surrounding double quotes (also a lone leading quote). */
export function stripQuotes(msg: string): string {
  let s = msg.trim();
  if (s.startsWith('"')) s = s.endsWith('"') && s.length >= 2 ? s.slice(1, -1) : s.slice(1);
  return s.trim();
}

/** Flow key, seq/ack and payload length of a parsed TCP/UDP frame; {} when it has no L4 ports. */
export function frameFacts(f: ParsedFrame): Pick<Alert, 'flow' | 'seq' | 'ack' | 'payloadLength'> {
  const l4 = f.tcp ?? f.udp;
  const ip = f.ipv4 ?? f.ipv6;
  if (!ip || !l4) return {};
  const out: Pick<Alert, 'flow' | 'seq' | 'ack' | 'payloadLength'> = {
    flow: { srcIp: ip.src, srcPort: l4.srcPort, dstIp: ip.dst, dstPort: l4.dstPort },
    payloadLength: f.payload.length,
  };
  if (f.tcp) { out.seq = f.tcp.seq; out.ack = f.tcp.ack; }
  return out;
}

/** Stable text form of a flow key, for maps and logs. */
export function flowKeyString(k: FlowKey): string {
  return `${k.srcIp}:${k.srcPort}->${k.dstIp}:${k.dstPort}`;
}
