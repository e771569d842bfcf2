// Assertions on the codecs' Result values (packet, QUIC, LLDP), shared by their tests.
import assert from 'node:assert/strict';

type AnyResult<T> = { ok: true; value: T } | { ok: false; error: { kind: string; message: string } };

/** The value, or the test fails naming the error. */
export function unwrap<T>(r: AnyResult<T>): T {
  if (!r.ok) assert.fail(`${r.error.kind}: ${r.error.message}`);
  return r.value;
}

/** The error's kind; the test fails if it is a value. */
export function errKind(r: AnyResult<unknown>): string {
  assert.equal(r.ok, false, 'expected an error');
  return r.ok ? '' : r.error.kind;
}

/** The packet codec's error kinds (controller/packet/result.ts). */
export const PACKET_ERROR_KINDS = ['truncated', 'bad_value', 'unsupported', 'bad_options', 'not_applicable', 'bad_argument'] as const;

/** A check that a result is a value, or an error of one of `kinds` with a message (what fuzzers assert of any input). */
export function wellFormedIn(kinds: readonly string[]): (r: AnyResult<unknown>) => void {
  const known = new Set(kinds);
  return (r) => {
    assert.equal(typeof r.ok, 'boolean');
    if (!r.ok) {
      assert.ok(known.has(r.error.kind), r.error.kind);
      assert.equal(typeof r.error.message, 'string');
    }
  };
}
