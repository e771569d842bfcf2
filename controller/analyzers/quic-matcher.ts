/**
 * The built-in matcher for QUIC services: applies the udp/quic rules of rules.ts to what the QUIC
 * codec read from a client's first flight (version, SNI), the way Suricata 7 fills its
 * `quic.version` and `quic.sni` sticky buffers. Pure and synchronous, like the TCP path: the
 * same rule order, the same Alert (ruleAlert), so the first alert with a verdict decides.
 */
import type { ClientInitialProgress } from '../quic/index.ts';
import { parseIpv4, parseIpv6 } from '../packet/addr.ts';
import { err, type Result } from '../packet/result.ts';
import { addrMatch, asciiLower, portMatch, ruleAlert, type BufferMatch, type MatchAddr, type QuicBuffer, type Rule } from './rules.ts';
import type { Alert, FlowKey } from './types.ts';

export type CompleteInitial = Extract<ClientInitialProgress, { status: 'complete' }>;

/**
 * The bytes of a sticky buffer for this Initial, undefined when it has none: `quic.version` is
 * the 4 version bytes of the long header (`|00 00 00 01|` for v1), `quic.sni` the host name as
 * sent (no case folding).
 */
export function quicBuffer(name: QuicBuffer, initial: CompleteInitial): Buffer | undefined {
  if (name === 'quic.version') {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(initial.version >>> 0);
    return b;
  }
  return initial.sni === undefined ? undefined : Buffer.from(initial.sni, 'latin1');
}

/**
 * Every udp/quic rule that matches a client's Initial, in rule order; TCP rules are skipped.
 * `flow` is the Initial's datagram (client → service), tested against the rule header as the TCP
 * path tests a segment (either IP family). Until the ClientHello is complete nothing matches:
 * the caller waits for the assembler's `complete`.
 */
export function matchQuicRules(rules: readonly Rule[], initial: ClientInitialProgress, flow: FlowKey, time: Date = new Date()): Alert[] {
  if (initial?.status !== 'complete') return [];
  const src = matchAddrOf(flow?.srcIp);
  const dst = matchAddrOf(flow?.dstIp);
  if (!src.ok || !dst.ok) return [];
  const bufs = new Buffers(initial);
  const out: Alert[] = [];
  for (const r of rules) {
    if (r.proto === 'tcp') continue;
    const fwd = addrMatch(r.src, src.value) && addrMatch(r.dst, dst.value) && portMatch(r.srcPorts, flow.srcPort) && portMatch(r.dstPorts, flow.dstPort);
    if (!fwd) {
      const rev = r.bidirectional && addrMatch(r.src, dst.value) && addrMatch(r.dst, src.value)
        && portMatch(r.srcPorts, flow.dstPort) && portMatch(r.dstPorts, flow.srcPort);
      if (!rev) continue;
    }
    if (!(r.buffers ?? []).every((m) => bufferMatch(m, bufs))) continue;
    out.push(ruleAlert(r, time, { flow: { srcIp: flow.srcIp, srcPort: flow.srcPort, dstIp: flow.dstIp, dstPort: flow.dstPort } }));
  }
  return out;
}

/**
 * The alert that decides the connection: the first one with a verdict, in rule order, as the
 * first verdict alert decides a held TCP connection. Undefined: no verdict rule matched (the
 * service's default verdict applies).
 */
export function quicVerdict(rules: readonly Rule[], initial: ClientInitialProgress, flow: FlowKey, time?: Date): Alert | undefined {
  return matchQuicRules(rules, initial, flow, time).find((a) => a.verdict);
}

/** Each buffer of one Initial, and its lower-case copy, computed once for all rules. */
class Buffers {
  private readonly raw = new Map<QuicBuffer, Buffer | undefined>();
  private readonly lower = new Map<QuicBuffer, Buffer>();
  constructor(private readonly initial: CompleteInitial) {}

  get(name: QuicBuffer, nocase = false): Buffer | undefined {
    if (!this.raw.has(name)) this.raw.set(name, quicBuffer(name, this.initial));
    const b = this.raw.get(name);
    if (!b || !nocase) return b;
    let l = this.lower.get(name);
    if (!l) this.lower.set(name, l = asciiLower(b));
    return l;
  }
}

/**
 * One test. An absent or empty buffer fails every test, negated ones included: Suricata does not
 * inspect a buffer that is not there (a rule on quic.sni never matches an Initial without SNI).
 */
function bufferMatch(m: BufferMatch, bufs: Buffers): boolean {
  if (m.kind === 'pcre') {
    const b = bufs.get(m.buffer);
    if (!b?.length) return false;
    return m.regex.test(b.toString('latin1')) !== m.negated;
  }
  const c = m.content;
  const hay = bufs.get(m.buffer, c.nocase);
  if (!hay?.length) return false;
  const needle = c.nocase ? c.lower : c.bytes;
  let found: boolean;
  if (m.startsWith && m.endsWith) found = hay.equals(needle);
  else if (m.startsWith) found = hay.length >= needle.length && hay.subarray(0, needle.length).equals(needle);
  else if (m.endsWith) found = hay.length >= needle.length && hay.subarray(hay.length - needle.length).equals(needle);
  else found = hay.indexOf(needle) >= 0;
  return found !== c.negated;
}

/** A flow's text address as the rule header's address tests take it (IPv4 as a number, IPv6 as bytes). */
function matchAddrOf(ip: string | undefined): Result<MatchAddr> {
  if (typeof ip !== 'string') return err('bad_argument', 'no address');
  return ip.includes(':') ? parseIpv6(ip) : parseIpv4(ip);
}
