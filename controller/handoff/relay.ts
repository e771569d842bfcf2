// Relaying through the controller (stock switches with a shifted sequence space, and stragglers):
// the same NAT and seq/ack shift the patched switch applies, done to one frame. Pure: each returns
// the rewritten copy, or undefined when the frame cannot be rewritten.
import { rewriteEthDst, rewriteEthSrc, rewriteIpDst, rewriteIpSrc, rewriteL4DstPort, rewriteL4SrcPort, shiftTcpAck, shiftTcpSeq } from '../packet/index.ts';
import type { Connection } from './connection.ts';

type Relayable = Pick<Connection, 'backend' | 'serviceL2' | 'ackDelta'>;

/** The connection still runs to the service's own backend in its own sequence space: nothing to rewrite. */
export function isIdentity(c: Relayable): boolean {
  return c.backend.ip === c.serviceL2.ip && c.backend.port === c.serviceL2.port && (c.ackDelta >>> 0) === 0;
}

/** Client → backend: to the backend's addresses, the ack (and SACK edges) into its sequence space. */
export function rewriteToBackend(c: Relayable, raw: Buffer): Buffer | undefined {
  const f = Buffer.from(raw);
  if (isIdentity(c)) return f;
  const b = c.backend;
  const ok = rewriteEthDst(f, b.mac).ok && rewriteIpDst(f, b.ip).ok && rewriteL4DstPort(f, b.port).ok && shiftTcpAck(f, c.ackDelta).ok;
  return ok ? f : undefined;
}

/** Backend → client: from the service's addresses, the seq back into the client's view. */
export function rewriteToClient(c: Relayable, raw: Buffer): Buffer | undefined {
  const f = Buffer.from(raw);
  if (isIdentity(c)) return f;
  const s = c.serviceL2;
  const ok = rewriteEthSrc(f, s.mac).ok && rewriteIpSrc(f, s.ip).ok && rewriteL4SrcPort(f, s.port).ok && shiftTcpSeq(f, -c.ackDelta).ok;
  return ok ? f : undefined;
}
