// Stream framing: cut a TCP byte stream into whole OpenFlow messages by the header length.
import { OFP_HEADER_LEN } from './constants.ts';
import { err, ok, type Result } from './result.ts';

/**
 * Splits `buf` into complete messages and the incomplete tail (`rest`, to be prefixed to the
 * next read). A header whose length is < 8 cannot be framed, so the stream is unusable: error.
 * The returned buffers are views into `buf`.
 */
export function splitMessages(buf: Buffer): Result<{ messages: Buffer[]; rest: Buffer }> {
  const messages: Buffer[] = [];
  let pos = 0;
  while (buf.length - pos >= OFP_HEADER_LEN) {
    const length = buf.readUInt16BE(pos + 2);
    if (length < OFP_HEADER_LEN) return err('bad_length', `message header length ${length} < 8`, pos + 2);
    if (buf.length - pos < length) break;
    messages.push(buf.subarray(pos, pos + length));
    pos += length;
  }
  return ok({ messages, rest: buf.subarray(pos) });
}
