// TCP-option policy across a handoff (DESIGN.md §3): which options the client's SYN may carry
// into the connection, and whether a target's SYN-ACK is compatible with what the client was told.
import { decodeTcpOptions, encodeTcpOptions, findOption, stripTcpOptions, stripTcpOptionsFromFrame, type TcpFlags, type TcpOption, type TcpOptionKind, type Result } from '../packet/index.ts';
import type { SynRecord } from './connection-record.ts';
import type { OptionPolicy } from './service-config.ts';

/** Options removed from the client's SYN before it reaches any server. */
export function optionsToStrip(policy: OptionPolicy): TcpOptionKind[] {
  const kinds: TcpOptionKind[] = [];
  // PAWS: the client would drop the target's unrelated TSvals (Linux randomises the offset per pair).
  if (policy.timestamps === 'strip') kinds.push('timestamp');
  if (policy.sack === 'strip') kinds.push('sack_permitted');
  return kinds;
}

/** TCP Fast Open (kind 34) and the old experimental TFO kind (254) tie a SYN to server 1's cookie secret. */
export const TFO_KINDS = [34, 254];
/** MPTCP (kind 30): on a SYN, MP_CAPABLE (or MP_JOIN) carries keys a replay to another server cannot honour. */
export const MPTCP_KIND = 30;

/**
 * The client's SYN as servers may see it: the policy's options removed, the TFO option always
 * (a cookie is server 1's secret) and any data it carries always (data must not reach a server
 * before a verdict; the client retransmits unacknowledged SYN data after the handshake, RFC 7413
 * §4.2.2, and that segment is held and analysed like any first segment).
 */
export function applySynPolicy(synFrame: Buffer, policy: OptionPolicy): Result<Buffer> {
  const unknownTypes = policy.mptcp === 'strip' ? [...TFO_KINDS, MPTCP_KIND] : TFO_KINDS;
  return stripTcpOptionsFromFrame(synFrame, optionsToStrip(policy), { unknownTypes, dropPayload: true });
}

export interface SynAckSummary { mss?: number; wscale?: number; sackPermitted: boolean; timestamps: boolean; ecn: boolean }

/** What a SYN-ACK agreed to. ECN: a SYN-ACK with ECE and without CWR accepts the client's ECN setup (RFC 3168 §6.1.1). */
export function summarise(options: readonly TcpOption[], flags?: Pick<TcpFlags, 'ece' | 'cwr'>): SynAckSummary {
  return {
    mss: findOption(options, 'mss')?.value,
    wscale: findOption(options, 'wscale')?.shift,
    sackPermitted: !!findOption(options, 'sack_permitted'),
    timestamps: !!findOption(options, 'timestamp'),
    ecn: !!flags && flags.ece && !flags.cwr,
  };
}

/**
 * The SYN replayed to a migration target offers only what the first backend accepted: a target
 * must not negotiate what the client never got (window scaling after a SYN-cookie SYN-ACK without
 * it, SACK, timestamps, ECN). What the first backend accepted and the target refuses is then a
 * mismatch (compareSynAcks). MSS is the client's own and always offered.
 */
export function replayedSynOffer(syn: Pick<SynRecord, 'options' | 'ecn'>, accepted: SynAckSummary | undefined): { options: Buffer; ecn: boolean } {
  const raw = Buffer.from(syn.options, 'hex');
  if (!accepted) return { options: raw, ecn: !!syn.ecn };
  const decoded = decodeTcpOptions(raw);
  if (!decoded.ok) return { options: raw, ecn: !!syn.ecn && accepted.ecn };
  const drop: TcpOptionKind[] = [];
  if (accepted.wscale === undefined) drop.push('wscale');
  if (!accepted.sackPermitted) drop.push('sack_permitted');
  if (!accepted.timestamps) drop.push('timestamp');
  const encoded = encodeTcpOptions(stripTcpOptions(decoded.value, drop));
  return { options: encoded.ok ? encoded.value : raw, ecn: !!syn.ecn && accepted.ecn };
}

export interface Mismatch { option: 'wscale' | 'mss' | 'timestamps' | 'sack' | 'ecn'; original: unknown; target: unknown; why: string }

/**
 * Differences between the SYN-ACK the client accepted (from the backend it talks to now) and the
 * target's, that would break the connection after the move.
 */
export function compareSynAcks(original: SynAckSummary, target: SynAckSummary): Mismatch[] {
  const out: Mismatch[] = [];
  if ((original.wscale ?? -1) !== (target.wscale ?? -1)) {
    out.push({ option: 'wscale', original: original.wscale, target: target.wscale, why: 'the client scales the target\'s windows by the original shift' });
  }
  // The client sends segments up to the MSS it was told; the target must accept that size.
  if ((target.mss ?? 536) < (original.mss ?? 536)) {
    out.push({ option: 'mss', original: original.mss, target: target.mss, why: 'the client may send segments larger than the target accepts' });
  }
  if (original.timestamps !== target.timestamps) {
    out.push({ option: 'timestamps', original: original.timestamps, target: target.timestamps, why: 'timestamp negotiation differs (PAWS / missing TSopt)' });
  }
  if (original.sackPermitted !== target.sackPermitted) {
    out.push({ option: 'sack', original: original.sackPermitted, target: target.sackPermitted, why: 'the client would send SACK blocks the target ignores (or never send those it expects)' });
  }
  if (original.ecn !== target.ecn) {
    out.push({ option: 'ecn', original: original.ecn, target: target.ecn, why: 'the client marks its segments ECN-capable as the first backend agreed; the target did not' });
  }
  return out;
}
