// The QUIC part of the rule language (Suricata 7 syntax): the sticky buffers quic.sni and
// quic.version and what may follow them in a udp/quic rule, and pcre as JavaScript runs it. Used by
// rules.ts's parser; checked against suricata -T by test/integration/analyzer-quic-suricata.test.ts.
import type { ContentMatch } from './rules.ts';

/** Suricata 7's QUIC sticky buffers the built-in matcher reads from a client Initial. */
export type QuicBuffer = 'quic.sni' | 'quic.version';
export const QUIC_BUFFERS: readonly QuicBuffer[] = ['quic.sni', 'quic.version'];

/** One test on a QUIC buffer, in rule order: a content (with startswith/endswith) or a pcre. */
export type BufferMatch =
  | { buffer: QuicBuffer; kind: 'content'; content: ContentMatch; startsWith: boolean; endsWith: boolean }
  | { buffer: QuicBuffer; kind: 'pcre'; regex: RegExp; negated: boolean; text: string };

export const QUIC_KEYWORD = /^quic[._]/;
const QUIC_OPTIONS = 'msg, quic.sni, quic.version, content, nocase, startswith, endswith, pcre, fast_pattern, app-layer-protocol:quic, sid, rev, gid, classtype, priority, metadata, reference';

export function quicUnsupported(name: string, proto: string): string {
  if ((QUIC_BUFFERS as readonly string[]).includes(name)) return `QUIC keywords need a "quic" or "udp" rule, this one is "${proto}"`;
  if (QUIC_KEYWORD.test(name)) return `not supported by the built-in matcher (QUIC sticky buffers: ${QUIC_BUFFERS.join(', ')})`;
  return `not supported by the built-in matcher in ${proto} rules (supported: ${QUIC_OPTIONS})`;
}

/**
 * The QUIC-specific part of a udp/quic rule: sticky buffers and what follows them. Suricata's
 * own checks are mirrored where it rejects a rule (a buffer with no match after it,
 * app-layer-protocol with a QUIC buffer before it), so a rule we accept also loads there.
 */
export class QuicOptions {
  readonly buffers: BufferMatch[] = [];
  appProtocol = false;
  /** The sticky buffer in force and whether anything matched on it yet. */
  private buffer: QuicBuffer | undefined;
  private used = false;

  constructor(private readonly proto: 'udp' | 'quic', private readonly fail: (m: string, o?: string) => void) {}

  /** Handles a QUIC-only option; false when `name` is not one. */
  option(name: string, value: string | undefined): boolean {
    switch (name) {
      case 'quic.sni': case 'quic.version':
        if (value !== undefined) this.fail('takes no value (a sticky buffer: the content or pcre after it reads it)', name);
        this.unused();
        this.buffer = name;
        this.used = false;
        return true;
      case 'startswith': case 'endswith': {
        if (value !== undefined) { this.fail('takes no value', name); return true; }
        const last = this.lastMatch(name);
        if (!last) return true;
        const key = name === 'startswith' ? 'startsWith' : 'endsWith';
        if (last[key]) this.fail('given twice for the same content', name);
        last[key] = true;
        return true;
      }
      case 'pcre': {
        if (!this.inBuffer(name)) return true;
        if (value === undefined || value.trim() === '') { this.fail('needs a value', name); return true; }
        const p = parsePcre(value.trim());
        if (typeof p === 'string') { this.fail(p, name); return true; }
        this.buffers.push({ buffer: this.buffer!, kind: 'pcre', ...p });
        return true;
      }
      case 'app-layer-protocol': {
        const v = value?.trim();
        if (v !== 'quic') { this.fail(`only app-layer-protocol:quic is supported, got ${v === undefined ? 'no value' : `"${v}"`}`, name); return true; }
        // Suricata refuses it once something else fixed the app-layer protocol.
        if (this.proto === 'quic') this.fail('a "quic" rule is QUIC already (Suricata rejects both together)', name);
        else if (this.buffers.length || this.buffer) this.fail('must come before quic.sni/quic.version (Suricata rejects it after them)', name);
        else if (this.appProtocol) this.fail('given twice', name);
        this.appProtocol = true;
        return true;
      }
      default:
        return false;
    }
  }

  /**
   * Whether a content or pcre has a sticky buffer to read. It counts as the buffer's match even
   * if its value then proves invalid, so that one mistake gives one error.
   */
  inBuffer(option: string): boolean {
    if (!this.buffer) {
      this.fail('must follow quic.sni; or quic.version; (in a QUIC rule the UDP payload itself is encrypted)', option);
      return false;
    }
    this.used = true;
    return true;
  }

  content(c: ContentMatch): void {
    this.buffers.push({ buffer: this.buffer!, kind: 'content', content: c, startsWith: false, endsWith: false });
  }

  /** The last content in the sticky buffer in force, for a modifier (nocase, fast_pattern). */
  lastContent(option: string): ContentMatch | undefined {
    return this.lastMatch(option)?.content;
  }

  /** Checks at the end of the rule. */
  finish(): void {
    this.unused();
    if (this.proto === 'udp' && !this.appProtocol && !this.buffer) {
      // A bare udp rule would alert on any UDP packet in Suricata; the built-in matcher only sees QUIC Initials.
      this.fail('only "tcp" rules, and "quic" rules or "udp" rules with a QUIC keyword (quic.sni, quic.version, app-layer-protocol:quic), are supported: the built-in matcher sees UDP only as QUIC Initials', 'protocol');
    }
  }

  private lastMatch(option: string): Extract<BufferMatch, { kind: 'content' }> | undefined {
    for (let i = this.buffers.length - 1; i >= 0; i--) {
      const m = this.buffers[i]!;
      if (m.buffer !== this.buffer) break;
      if (m.kind === 'content') return m;
    }
    this.fail(this.buffer ? `must follow a content option in ${this.buffer}` : 'must follow a content option', option);
    return undefined;
  }

  private unused(): void {
    if (this.buffer && !this.used) this.fail(`sticky buffer ${this.buffer} has no content or pcre after it`, this.buffer);
  }
}

/**
 * `pcre:[!]"/<pattern>/<flags>"`, run as a JavaScript RegExp over the buffer's bytes as latin1
 * (PCRE's non-UTF mode). Only what reads the same in both is accepted: flags i, s, m; escapes
 * \d \w \s \b \n \r \t \f \xHH (and their negations), back-references and escaped punctuation;
 * groups (?: (?= (?! (?<= (?<!. PCRE-only syntax (\A, \z, \Q…\E, \h, POSIX classes, inline
 * flags, atomic groups, possessive quantifiers) is an error rather than a silently different match.
 */
export function parsePcre(v: string): { regex: RegExp; negated: boolean; text: string } | string {
  const negated = v.startsWith('!');
  const q = negated ? v.slice(1).trim() : v;
  if (q.length < 2 || !q.startsWith('"') || !q.endsWith('"')) return `value must be a double-quoted "/pattern/flags", got ${v}`;
  const body = q.slice(1, -1);
  for (let i = 0; i < body.length; i++) {
    if (body[i] === '\\') i++;
    else if (body[i] === '"') return 'unescaped double quote inside the string';
  }
  const end = body.lastIndexOf('/');
  if (!body.startsWith('/') || end < 1) return `expected "/pattern/flags", got ${q}`;
  const pattern = body.slice(1, end);
  const flags = body.slice(end + 1);
  if (pattern === '') return 'empty pattern';
  for (const f of flags) {
    if (!'ism'.includes(f)) return `modifier "${f}" not supported by the built-in matcher (supported: i, s, m)`;
    if (flags.indexOf(f) !== flags.lastIndexOf(f)) return `modifier "${f}" given twice`;
  }
  const bad = pcreOnlySyntax(pattern);
  if (bad) return `${bad} is PCRE syntax the built-in matcher does not run (it runs the JavaScript-compatible subset)`;
  try {
    return { regex: new RegExp(pattern, flags), negated, text: body };
  } catch (e) {
    return `invalid regular expression: ${(e as Error).message}`;
  }
}

/** The first construct of `p` whose meaning differs between PCRE and JavaScript, if any. */
function pcreOnlySyntax(p: string): string | undefined {
  let inClass = false;
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '\\') {
      const n = p[i + 1];
      if (n === undefined) return 'a trailing backslash';
      i++;
      if (!/[A-Za-z0-9]/.test(n)) continue; // escaped punctuation is literal in both
      if (/[dDwWsSnrtf]/.test(n) || (!inClass && /[bB1-9]/.test(n)) || (inClass && n === 'b')) continue;
      if (n === 'x' && /^[0-9A-Fa-f]{2}$/.test(p.slice(i + 1, i + 3))) { i += 2; continue; }
      return `the escape \\${n}`;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      else if (c === '[' && /[:.=]/.test(p[i + 1] ?? '')) return 'a POSIX character class';
      continue;
    }
    if (c === '[') {
      inClass = true;
      // A leading "]" (or "^]") is a literal in PCRE but ends an empty class in JavaScript.
      if (p[i + 1] === ']' || (p[i + 1] === '^' && p[i + 2] === ']')) return 'a "]" first in a character class';
      if (p[i + 1] === '^') i++;
      continue;
    }
    if (c === '(' && p[i + 1] === '?' && !/^\?(:|=|!|<=|<!)/.test(p.slice(i + 1))) return `the group "${p.slice(i, i + 4)}…"`;
  }
  return undefined;
}
