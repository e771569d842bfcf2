// ofp_match (OXM type): header, OXM TLVs, padding to a multiple of 8 bytes.
import { OFPMT } from './constants.ts';
import { readOxmFields, writeOxmFields, type Match } from './oxm.ts';
import { Reader } from './reader.ts';
import { guard, type Result } from './result.ts';
import { Writer } from './writer.ts';

export type { Match, Masked, MatchField, UnknownOxm } from './oxm.ts';

export function writeMatch(w: Writer, match: Match): void {
  const start = w.length;
  w.u16(OFPMT.OXM).u16(0);
  writeOxmFields(w, match);
  // ofp_match.length excludes the trailing padding.
  w.patchU16(start + 2, w.length - start, 'match length');
  w.padTo(start, 8);
}

export function readMatch(r: Reader): Match {
  const start = r.offset;
  const type = r.u16('match type');
  const length = r.u16('match length');
  if (type !== OFPMT.OXM) r.fail('unsupported', `match type ${type} (only OFPMT_OXM is OpenFlow 1.3)`, start);
  if (length < 4) r.fail('bad_length', `match length ${length} < 4`, start + 2);
  const fields = r.sub(length - 4, 'match fields');
  const padded = (length + 7) & ~7;
  r.skip(padded - length, 'match padding');
  return readOxmFields(fields);
}

export function encodeMatch(match: Match): Buffer {
  const w = new Writer(64);
  writeMatch(w, match);
  return w.toBuffer();
}

/** Decode a complete ofp_match (with padding); trailing bytes are an error. */
export function decodeMatch(buf: Buffer): Result<Match> {
  return guard(() => {
    const r = new Reader(buf);
    const m = readMatch(r);
    if (!r.atEnd) r.fail('bad_length', `${r.remaining} byte(s) after the match`);
    return m;
  });
}
