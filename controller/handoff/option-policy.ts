// TCP-option policy across a handoff (DESIGN.md §3): which options the client's SYN may carry
// into the connection, and whether a target's SYN-ACK is compatible with what the client was told.
import { findOption, stripTcpOptionsFromFrame, type TcpOption, type TcpOptionKind, type Result } from '../packet/index.ts';
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

export function applySynPolicy(synFrame: Buffer, policy: OptionPolicy): Result<Buffer> {
  return stripTcpOptionsFromFrame(synFrame, optionsToStrip(policy), { unknownTypes: TFO_KINDS });
}

export interface SynAckSummary { mss?: number; wscale?: number; sackPermitted: boolean; timestamps: boolean }

export function summarise(options: readonly TcpOption[]): SynAckSummary {
  return {
    mss: findOption(options, 'mss')?.value,
    wscale: findOption(options, 'wscale')?.shift,
    sackPermitted: !!findOption(options, 'sack_permitted'),
    timestamps: !!findOption(options, 'timestamp'),
  };
}

export interface Mismatch { option: 'wscale' | 'mss' | 'timestamps'; original: unknown; target: unknown; why: string }

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
  return out;
}
