/**
 * Parser for the subset of Snort rule syntax the built-in matcher implements (docs/analyzers.md):
 *
 *   alert tcp <src> <sport> (->|<>) <dst> <dport> (msg:"..."; content:[!]"..."; nocase; flags:...;
 *                                                  sid:N; rev:N; gid:N; classtype:x; priority:N;)
 *   alert quic|udp ... (msg:"..."; quic.sni; content:"..."; nocase; startswith; endswith;
 *                       pcre:"/.../ism"; quic.version; content:"|00 00 00 01|"; sid:N; ...)
 *
 * QUIC rules (docs/quic.md, "Rules for QUIC services") use Suricata 7's sticky buffers and are
 * matched against a client's decoded Initial by quic-matcher.ts, never against TCP segments.
 *
 * Content modifiers are accepted in both forms: Snort 2.9 / Suricata 7 (`content:"x"; nocase;`)
 * and Snort 3 (`content:"x",nocase;`), so one file can be checked whichever engine it is for
 * (rules-export.ts converts a file between the two).
 *
 * Anything outside the subset is an error naming file, line and option, never silently ignored:
 * a rule the matcher half-understands would give verdicts Suricata/Snort would not. All errors
 * of a file are collected so a rule author sees them at once. Semantics follow Suricata 7
 * (checked against a real Suricata by test/integration/analyzer-builtin-vs-suricata.test.ts).
 */
import { readFile } from 'node:fs/promises';
import { parseIpv6 } from '../packet/addr.ts';
import { verdictOf, type Alert, type Verdict } from './types.ts';
import { QuicOptions, QUIC_KEYWORD, quicUnsupported, type BufferMatch } from './quic-rules.ts';

export { parsePcre, QUIC_BUFFERS, type BufferMatch, type QuicBuffer } from './quic-rules.ts';

// ---------------------------------------------------------------------------------------------
// Types

/** Address expression tree: IPv4 and IPv6 prefixes (a prefix of one family never matches the other's addresses). */
export type AddrNode =
  | { kind: 'any' }
  | { kind: 'cidr'; net: number; mask: number; text: string }
  | { kind: 'cidr6'; net: Buffer; bits: number; text: string }
  | { kind: 'list'; items: AddrNode[] }
  | { kind: 'not'; node: AddrNode };

/** Port expression tree. */
export type PortNode =
  | { kind: 'any' }
  | { kind: 'range'; lo: number; hi: number }
  | { kind: 'list'; items: PortNode[] }
  | { kind: 'not'; node: PortNode };

export interface ContentMatch {
  bytes: Buffer;
  /** Lower-cased bytes (ASCII only), used when nocase. */
  lower: Buffer;
  nocase: boolean;
  negated: boolean;
}


export type FlagsModifier = 'exact' | 'plus' | 'any' | 'not';
/** TCP flags test, 8-bit (CWR..FIN) as Suricata's `flags` keyword. */
export interface FlagsMatch { flags: number; modifier: FlagsModifier; /** Bits taken into account (mask letters removed). */ considered: number; text: string }

export interface Rule {
  file: string;
  line: number;
  text: string;
  action: 'alert';
  /** `tcp` rules match segments (builtin-matcher.ts); `udp`/`quic` rules match QUIC Initials (quic-matcher.ts). */
  proto: 'tcp' | 'udp' | 'quic';
  src: AddrNode;
  srcPorts: PortNode;
  dst: AddrNode;
  dstPorts: PortNode;
  /** `<>`: the rule also matches with source and destination swapped. */
  bidirectional: boolean;
  msg: string;
  gid: number;
  sid: number;
  rev: number;
  classtype?: string;
  priority?: number;
  contents: ContentMatch[];
  flags?: FlagsMatch;
  /** udp/quic rules: tests on QUIC sticky buffers, all of which must match. */
  buffers?: BufferMatch[];
  /** `app-layer-protocol:quic` in a udp rule. */
  appProtocol?: 'quic';
  verdict?: Verdict;
}

export interface RuleError {
  file: string;
  line: number;
  /** The rule option (or header part) at fault, when there is one. */
  option?: string;
  message: string;
}

export interface ParseResult {
  rules: Rule[];
  errors: RuleError[];
  /** Valid rules that probably do not do what the author wants (see STREAM_WARNING). */
  warnings: RuleError[];
}

/**
 * Observed with Suricata 7.0.10: a content rule without a `flags` option is matched on the
 * reassembled stream, and its alert comes with a later client packet once the server has ACKed
 * the data: never for a segment the controller holds (nobody ACKs it). The built-in matcher
 * does not care, the IDSes do.
 */
export const STREAM_WARNING =
  'content rule without "flags": Suricata matches it on the reassembled stream and alerts only after the server has ACKed the data, which never happens for a held segment; add flags:A+';

export interface ParseOptions {
  /** Name used in error messages. */
  file?: string;
  /** Address/port variables without the `$` (HOME_NET: "[10.0.0.0/8]"). Undefined variables are `any`. */
  vars?: Record<string, string>;
  /** First line number of `text` (default 1). */
  firstLine?: number;
}

export function formatRuleError(e: RuleError): string {
  return `${e.file}:${e.line}: ${e.option ? `option "${e.option}": ` : ''}${e.message}`;
}

/**
 * The alert a matching rule gives, whatever it matched (a TCP segment, a QUIC Initial): the
 * verdict comes from its msg (verdictOf, at parse time), classtype and priority ride along.
 */
export function ruleAlert(r: Rule, time: Date, facts: Pick<Alert, 'flow' | 'seq' | 'ack' | 'payloadLength'>): Alert {
  const a: Alert = { source: 'builtin', msg: r.msg, gid: r.gid, sid: r.sid, rev: r.rev, time, ...facts };
  if (r.verdict) a.verdict = r.verdict;
  if (r.classtype !== undefined) a.classification = r.classtype;
  if (r.priority !== undefined) a.priority = r.priority;
  return a;
}

/** Thrown by loadRules when any rule is invalid; carries every error found. */
export class RuleParseError extends Error {
  constructor(readonly errors: RuleError[]) {
    super(`${errors.length} invalid rule${errors.length === 1 ? '' : 's'}:\n` + errors.map(formatRuleError).join('\n'));
    this.name = 'RuleParseError';
  }
}

// ---------------------------------------------------------------------------------------------
// Line handling

export interface RuleLine { line: number; text: string; /** Set (with keepComments) for a comment or blank line, kept verbatim. */ comment?: true }

/**
 * Joins `\` continuations and drops comments and blank lines (or, with `keepComments`, returns
 * them verbatim, marked `comment`); keeps the first line number.
 */
export function splitRuleLines(text: string, firstLine = 1, keepComments = false): RuleLine[] {
  const out: RuleLine[] = [];
  const lines = text.split(/\r?\n/);
  let acc = '';
  let start = -1;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    if (start < 0) {
      const t = raw.trim();
      if (t === '' || t.startsWith('#')) {
        // The empty string after a final newline is not a line.
        if (keepComments && !(raw === '' && i === lines.length - 1)) out.push({ line: firstLine + i, text: raw, comment: true });
        continue;
      }
      start = firstLine + i;
    }
    const cont = /\\\s*$/.test(raw) && !/\\\\\s*$/.test(raw);
    acc += cont ? raw.replace(/\\\s*$/, '') : raw;
    if (!cont) {
      out.push({ line: start, text: acc.trim() });
      acc = '';
      start = -1;
    }
  }
  if (start >= 0 && acc.trim()) out.push({ line: start, text: acc.trim() });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Entry points

export function parseRules(text: string, opts: ParseOptions = {}): ParseResult {
  const file = opts.file ?? '<rules>';
  const vars = opts.vars ?? {};
  const rules: Rule[] = [];
  const errors: RuleError[] = [];
  const warnings: RuleError[] = [];
  const seen = new Map<string, number>();
  for (const { line, text: rt } of splitRuleLines(text, opts.firstLine ?? 1)) {
    const errs: RuleError[] = [];
    const rule = parseRule(rt, file, line, vars, errs);
    if (rule) {
      const key = `${rule.gid}:${rule.sid}`;
      const prev = seen.get(key);
      if (prev !== undefined) errs.push({ file, line, option: 'sid', message: `duplicate sid ${rule.sid} (gid ${rule.gid}), first defined on line ${prev}` });
      else seen.set(key, line);
    }
    if (errs.length) errors.push(...errs);
    else if (rule) {
      rules.push(rule);
      if (rule.contents.length && !rule.flags) warnings.push({ file, line, option: 'flags', message: STREAM_WARNING });
    }
  }
  return { rules, errors, warnings };
}

/** Reads and parses rule files; errors of all files are collected (duplicate sids across files too). */
export async function loadRuleFiles(paths: string[], vars: Record<string, string> = {}): Promise<ParseResult> {
  const rules: Rule[] = [];
  const errors: RuleError[] = [];
  const warnings: RuleError[] = [];
  const seen = new Map<string, Rule>();
  for (const p of paths) {
    let text: string;
    try {
      text = await readFile(p, 'utf8');
    } catch (e) {
      errors.push({ file: p, line: 0, message: `cannot read rule file: ${(e as Error).message}` });
      continue;
    }
    const r = parseRules(text, { file: p, vars });
    errors.push(...r.errors);
    warnings.push(...r.warnings);
    for (const rule of r.rules) {
      const prev = seen.get(`${rule.gid}:${rule.sid}`);
      if (prev) {
        errors.push({ file: p, line: rule.line, option: 'sid', message: `duplicate sid ${rule.sid}, first defined at ${prev.file}:${prev.line}` });
        continue;
      }
      seen.set(`${rule.gid}:${rule.sid}`, rule);
      rules.push(rule);
    }
  }
  return { rules, errors, warnings };
}

/** Like loadRuleFiles but throws RuleParseError (with every error) if any rule is invalid. */
export async function loadRules(paths: string[], vars: Record<string, string> = {}): Promise<Rule[]> {
  const r = await loadRuleFiles(paths, vars);
  if (r.errors.length) throw new RuleParseError(r.errors);
  return r.rules;
}

// ---------------------------------------------------------------------------------------------
// One rule

function parseRule(text: string, file: string, line: number, vars: Record<string, string>, errs: RuleError[]): Rule | undefined {
  const fail = (message: string, option?: string): undefined => {
    errs.push(option === undefined ? { file, line, message } : { file, line, option, message });
    return undefined;
  };
  const open = text.indexOf('(');
  if (open < 0 || !text.endsWith(')')) return fail('a rule is "<header> (<options>)": missing parentheses');
  const header = splitHeader(text.slice(0, open));
  if (header.length !== 7) return fail(`header must have 7 parts (action proto src sport dir dst dport), got ${header.length}: "${text.slice(0, open).trim()}"`);
  const [action, proto, srcT, sportT, dir, dstT, dportT] = header as [string, string, string, string, string, string, string];
  const startErrs = errs.length;
  if (action !== 'alert') fail(`only "alert" rules are supported, got "${action}"`, 'action');
  if (proto !== 'tcp' && proto !== 'udp' && proto !== 'quic') fail(`only "tcp", "udp" and "quic" rules are supported, got "${proto}"`, 'protocol');
  const quic = proto === 'udp' || proto === 'quic' ? new QuicOptions(proto, (m, o) => { fail(m, o); }) : undefined;
  if (dir !== '->' && dir !== '<>') fail(`direction must be "->" or "<>", got "${dir}"`, 'direction');
  const ctx = (what: string): ((m: string) => void) => (m: string) => { fail(m, what); };
  const src = parseAddr(srcT, vars, ctx('source address'), 0);
  const srcPorts = parsePorts(sportT, vars, ctx('source port'), 0);
  const dst = parseAddr(dstT, vars, ctx('destination address'), 0);
  const dstPorts = parsePorts(dportT, vars, ctx('destination port'), 0);

  const opts = splitOptions(text.slice(open + 1, -1), (m, o) => fail(m, o));
  const rule: Partial<Rule> & { contents: ContentMatch[] } = { contents: [] };
  let sid: number | undefined;
  for (const { name, value } of opts) {
    const need = (): string | undefined => {
      if (value === undefined || value.trim() === '') { fail('needs a value', name); return undefined; }
      return value.trim();
    };
    switch (name) {
      case 'msg': {
        const v = need(); if (v === undefined) break;
        const s = unquote(v, (m) => fail(m, name));
        if (s !== undefined) rule.msg = s.toString('utf8');
        break;
      }
      case 'content': {
        if (quic && !quic.inBuffer(name)) break;
        const v = need(); if (v === undefined) break;
        const negated = v.startsWith('!');
        // Snort 2 / Suricata: content:"x"; nocase;   Snort 3: content:"x",nocase;  (both accepted)
        const q = splitQuoted(negated ? v.slice(1).trim() : v);
        const bytes = unquote(q.quoted, (m) => fail(m, name), true);
        if (bytes === undefined) break;
        if (bytes.length === 0) { fail('empty content', name); break; }
        const c: ContentMatch = { bytes, lower: asciiLower(bytes), nocase: false, negated };
        // Snort 3 has no QUIC buffers, so QUIC rules are Suricata's: its form keeps them loadable there.
        if (quic && q.modifiers.length) { fail(`QUIC rules use Suricata's form (content:"x"; nocase;), not Snort 3's ${v}`, name); break; }
        for (const mod of q.modifiers) {
          if (mod === 'nocase') {
            if (c.nocase) { fail('nocase given twice for the same content', name); break; }
            c.nocase = true;
          } else if (mod !== 'fast_pattern') {
            fail(mod === '' ? `empty modifier after the string in ${v}` : `modifier "${mod}" not supported by the built-in matcher (supported after the string: nocase, fast_pattern)`, name);
          }
        }
        if (quic) quic.content(c);
        else rule.contents.push(c);
        break;
      }
      case 'nocase': {
        if (value !== undefined) { fail('takes no value', name); break; }
        const last = quic ? quic.lastContent(name) : rule.contents[rule.contents.length - 1];
        if (quic && !last) break;
        if (!last) { fail('must follow a content option', name); break; }
        if (last.nocase) { fail('given twice for the same content (content:"x",nocase; is Snort 3\'s form, content:"x"; nocase; the others\')', name); break; }
        last.nocase = true;
        break;
      }
      case 'fast_pattern':
        // A performance hint for the multi-pattern matcher; no effect on what matches.
        if (quic) quic.lastContent(name);
        else if (rule.contents.length === 0) fail('must follow a content option', name);
        break;
      case 'flags': {
        if (quic) { fail(`tests TCP flags; this is a ${proto} rule`, name); break; }
        const v = need(); if (v === undefined) break;
        if (rule.flags) { fail('given twice', name); break; }
        const f = parseFlags(v);
        if (typeof f === 'string') fail(f, name); else rule.flags = f;
        break;
      }
      case 'sid': case 'rev': case 'gid': case 'priority': {
        const v = need(); if (v === undefined) break;
        if (!/^\d{1,10}$/.test(v) || Number(v) > 0xffffffff) { fail(`must be an unsigned 32-bit integer, got "${v}"`, name); break; }
        const n = Number(v);
        if (name === 'sid') { if (n === 0) { fail('must not be 0', name); break; } sid = n; }
        else if (name === 'rev') rule.rev = n;
        else if (name === 'gid') rule.gid = n;
        else rule.priority = n;
        break;
      }
      case 'classtype': {
        const v = need(); if (v === undefined) break;
        if (!/^[A-Za-z0-9_-]+$/.test(v)) { fail(`invalid classtype name "${v}"`, name); break; }
        rule.classtype = v;
        break;
      }
      case 'metadata': case 'reference':
        // Informational only.
        break;
      default:
        if (quic?.option(name, value)) break;
        if (quic || QUIC_KEYWORD.test(name)) fail(quicUnsupported(name, proto), name);
        else fail(`not supported by the built-in matcher (supported: msg, content, nocase, fast_pattern, flags, sid, rev, gid, classtype, priority, metadata, reference)`, name);
    }
  }
  quic?.finish();
  if (sid === undefined && !errs.some((e) => e.option === 'sid')) fail('every rule needs a sid', 'sid');
  if (errs.length > startErrs || !src || !dst || !srcPorts || !dstPorts || sid === undefined) return undefined;
  const msg = rule.msg ?? '';
  const out: Rule = {
    file, line, text, action: 'alert', proto: proto as Rule['proto'], src, srcPorts, dst, dstPorts,
    bidirectional: dir === '<>', msg, gid: rule.gid ?? 1, sid, rev: rule.rev ?? 0, contents: rule.contents,
  };
  if (quic) {
    out.buffers = quic.buffers;
    if (quic.appProtocol) out.appProtocol = 'quic';
  }
  if (rule.classtype !== undefined) out.classtype = rule.classtype;
  if (rule.priority !== undefined) out.priority = rule.priority;
  if (rule.flags) out.flags = rule.flags;
  const v = verdictOf(msg);
  if (v) out.verdict = v;
  return out;
}

/** Splits the header on whitespace, except inside [...] lists (spaces there are dropped). */
function splitHeader(h: string): string[] {
  const out: string[] = [];
  let cur = '';
  let depth = 0;
  for (const ch of h.trim()) {
    if (ch === '[') depth++;
    else if (ch === ']') depth = Math.max(0, depth - 1);
    if (/\s/.test(ch)) {
      if (depth > 0) continue;
      if (cur) out.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur) out.push(cur);
  return out;
}

export interface RawOption { name: string; value?: string }

/** Splits `name:value; name; ...` on unescaped `;` (as Snort/Suricata do: quotes do not protect `;`). */
export function splitOptions(body: string, fail: (m: string, o?: string) => void): RawOption[] {
  const out: RawOption[] = [];
  let cur = '';
  const flush = (): void => {
    const t = cur.trim();
    cur = '';
    if (!t) return;
    const colon = t.indexOf(':');
    const name = (colon < 0 ? t : t.slice(0, colon)).trim();
    if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(name)) { fail(`malformed option "${t}"`); return; }
    out.push(colon < 0 ? { name } : { name, value: t.slice(colon + 1) });
  };
  for (let i = 0; i < body.length; i++) {
    const ch = body[i]!;
    if (ch === '\\' && i + 1 < body.length) { cur += ch + body[i + 1]; i++; continue; }
    if (ch === ';') flush(); else cur += ch;
  }
  flush();
  return out;
}

/**
 * Splits an option value that starts with a double-quoted string from what follows it: Snort 3's
 * content modifiers (`"x", nocase, depth 4` → quoted `"x"`, modifiers [`nocase`, `depth 4`]).
 * Without a closing quote, or without a string at all, everything is `quoted` (unquote reports it).
 */
export function splitQuoted(v: string): { quoted: string; modifiers: string[] } {
  const t = v.trim();
  if (!t.startsWith('"')) return { quoted: t, modifiers: [] };
  for (let i = 1; i < t.length; i++) {
    if (t[i] === '\\') { i++; continue; }
    if (t[i] !== '"') continue;
    const rest = t.slice(i + 1).trim();
    if (rest === '') return { quoted: t, modifiers: [] };
    // Text after the string that is not a ","-list: leave it to unquote's error message.
    if (!rest.startsWith(',')) return { quoted: t, modifiers: [] };
    return { quoted: t.slice(0, i + 1), modifiers: rest.slice(1).split(',').map((m) => m.trim().replace(/\s+/g, ' ')) };
  }
  return { quoted: t, modifiers: [] };
}

/**
 * Decodes a quoted option value: `\"`, `\;`, `\\` escapes and, for content, `|41 42|` hex.
 * Returns the bytes, or undefined after reporting the problem.
 */
function unquote(v: string, fail: (m: string) => void, hex = false): Buffer | undefined {
  if (v.length < 2 || !v.startsWith('"') || !v.endsWith('"') || v.endsWith('\\"') && !v.endsWith('\\\\"')) {
    fail(`value must be a double-quoted string, got ${v}`);
    return undefined;
  }
  const s = v.slice(1, -1);
  const bytes: number[] = [];
  let inHex = false;
  let hexBuf = '';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (inHex) {
      if (ch === '|') {
        if (hexBuf.length % 2) { fail(`odd number of hex digits in |${hexBuf}|`); return undefined; }
        for (let j = 0; j < hexBuf.length; j += 2) bytes.push(parseInt(hexBuf.slice(j, j + 2), 16));
        hexBuf = '';
        inHex = false;
      } else if (/[0-9A-Fa-f]/.test(ch)) hexBuf += ch;
      else if (ch !== ' ') { fail(`invalid character "${ch}" in hex block`); return undefined; }
      continue;
    }
    if (ch === '\\') {
      const n = s[i + 1];
      if (n === '"' || n === ';' || n === '\\' || (hex && n === '|') || n === ':') { bytes.push(n.charCodeAt(0)); i++; continue; }
      fail(`invalid escape "\\${n ?? ''}" (only \\" \\; \\\\ \\: are allowed)`);
      return undefined;
    }
    if (ch === '"') { fail('unescaped double quote inside the string'); return undefined; }
    if (ch === '|' && hex) { inHex = true; continue; }
    for (const b of Buffer.from(ch, 'utf8')) bytes.push(b);
  }
  if (inHex) { fail('unterminated |hex| block'); return undefined; }
  return Buffer.from(bytes);
}

/** ASCII-only lower case, as content's nocase (and Suricata's). */
export function asciiLower(b: Buffer): Buffer {
  const out = Buffer.from(b);
  for (let i = 0; i < out.length; i++) if (out[i]! >= 0x41 && out[i]! <= 0x5a) out[i]! += 0x20;
  return out;
}

// ---------------------------------------------------------------------------------------------
// flags (Suricata detect-tcp-flags.c semantics)

const FLAG_LETTERS: Record<string, number> = { F: 0x01, S: 0x02, R: 0x04, P: 0x08, A: 0x10, U: 0x20, E: 0x40, '2': 0x40, C: 0x80, '1': 0x80 };

/** Parses `[!*+]<FSRPAUCE120>[!*+][,<mask>]`; returns an error string when invalid. */
export function parseFlags(text: string): FlagsMatch | string {
  const m = /^\s*([^,]*?)\s*(?:,\s*([^,]*?)\s*)?$/.exec(text);
  if (!m || !m[1]) return `expected [!*+]<FSRPAUCE120>[,<mask>], got "${text}"`;
  let flags = 0;
  let found = 0;
  let modifier: FlagsModifier = 'exact';
  for (const ch of m[1]) {
    if (ch === '!' || ch === '+' || ch === '*') {
      if (modifier !== 'exact') return `only one modifier (! + *) allowed, got "${text}"`;
      modifier = ch === '!' ? 'not' : ch === '+' ? 'plus' : 'any';
    } else if (ch === '0') { flags = 0; found++; }
    else if (FLAG_LETTERS[ch] !== undefined) { flags |= FLAG_LETTERS[ch]!; found++; }
    else return `unknown flag "${ch}" (use F S R P A U C E 1 2 0 and one of ! + *)`;
  }
  if (!found) return `no flag letters in "${text}"`;
  let considered = 0xff;
  if (m[2] !== undefined) {
    if (!m[2]) return `empty mask after "," in "${text}"`;
    for (const ch of m[2]) {
      if (ch === '0') continue;
      const bit = FLAG_LETTERS[ch];
      if (bit === undefined) return `unknown mask flag "${ch}" in "${text}"`;
      considered &= ~bit;
    }
  }
  return { flags, modifier, considered, text: text.trim() };
}

const INITDEINIT = 0x07; // F S R
const UNUSUAL = 0xe0; // U E C
const SYN = 0x02;

/**
 * Suricata 7's flags test on the 8 classic flag bits, including its pre-filtering, observed
 * with 7.0.10 and visible in detect-engine-build.c (SignatureCreateMask) and the SYN rule groups:
 * a test naming F/S/R is only evaluated on packets with one of F/S/R, one naming U/E/C only on
 * packets with one of U/E/C, and a non-negated test naming S only on packets with SYN. So
 * `!F` matches only SYN/RST packets, and `*FU` needs F/S/R and U/E/C. Snort differs here.
 */
export function flagsMatch(f: FlagsMatch, packetFlags: number): boolean {
  const p = packetFlags & 0xff;
  if (f.flags & INITDEINIT && !(p & INITDEINIT)) return false;
  if (f.flags & UNUSUAL && !(p & UNUSUAL)) return false;
  if (f.modifier !== 'not' && f.flags & SYN && !(p & SYN)) return false;
  // FlagsMatch() in detect-tcp-flags.c:
  if (!f.flags && p) return f.modifier === 'not';
  const v = p & f.considered;
  switch (f.modifier) {
    case 'any': return (v & f.flags) > 0;
    case 'plus': return (v & f.flags) === f.flags;
    case 'not': return (v & f.flags) !== f.flags;
    default: return v === f.flags;
  }
}

// ---------------------------------------------------------------------------------------------
// Addresses and ports

const MAX_VAR_DEPTH = 8;

function resolveVar(tok: string, vars: Record<string, string>, fail: (m: string) => void, depth: number): string | undefined {
  const name = tok.slice(1);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) { fail(`invalid variable name "${tok}"`); return undefined; }
  if (depth >= MAX_VAR_DEPTH) { fail(`variable ${tok} nests too deeply (a cycle?)`); return undefined; }
  const v = vars[name];
  if (v === undefined) return 'any';
  return v;
}

/** Splits "a,[b,c],d" at top-level commas. */
function splitList(s: string): string[] | undefined {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '[') depth++;
    if (ch === ']') { depth--; if (depth < 0) return undefined; }
    if (ch === ',' && depth === 0) { out.push(cur.trim()); cur = ''; } else cur += ch;
  }
  if (depth !== 0) return undefined;
  out.push(cur.trim());
  return out;
}

export function parseAddr(tok: string, vars: Record<string, string>, fail: (m: string) => void, depth = 0): AddrNode | undefined {
  const t = tok.trim();
  if (t === 'any') return { kind: 'any' };
  if (t.startsWith('!')) {
    const inner = parseAddr(t.slice(1), vars, fail, depth);
    if (!inner) return undefined;
    if (inner.kind === 'any') { fail('"!any" matches nothing'); return undefined; }
    return { kind: 'not', node: inner };
  }
  if (t.startsWith('$')) {
    const v = resolveVar(t, vars, fail, depth);
    return v === undefined ? undefined : parseAddr(v, vars, fail, depth + 1);
  }
  if (t.startsWith('[')) {
    if (!t.endsWith(']')) { fail(`unbalanced brackets in "${t}"`); return undefined; }
    const parts = splitList(t.slice(1, -1));
    if (!parts || parts.some((p) => !p)) { fail(`malformed list "${t}"`); return undefined; }
    const items: AddrNode[] = [];
    for (const p of parts) {
      const n = parseAddr(p, vars, fail, depth);
      if (!n) return undefined;
      items.push(n);
    }
    return { kind: 'list', items };
  }
  if (t.includes(':')) return parseAddr6(t, fail);
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/.exec(t);
  if (!m) {
    fail(`invalid address "${t}" (use any, a.b.c.d, a.b.c.d/n, an IPv6 address or prefix, [list], !x, $VAR)`);
    return undefined;
  }
  const oct = m.slice(1, 5).map(Number);
  const bits = m[5] === undefined ? 32 : Number(m[5]);
  if (oct.some((o) => o > 255) || bits > 32) { fail(`invalid address "${t}"`); return undefined; }
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  const ip = ((oct[0]! << 24) | (oct[1]! << 16) | (oct[2]! << 8) | oct[3]!) >>> 0;
  return { kind: 'cidr', net: (ip & mask) >>> 0, mask, text: t };
}

/** An IPv6 address or prefix (2001:db8::/32), as Snort 3 and Suricata write them. */
function parseAddr6(t: string, fail: (m: string) => void): AddrNode | undefined {
  const slash = t.indexOf('/');
  const addr = slash < 0 ? t : t.slice(0, slash);
  const bitsText = slash < 0 ? '128' : t.slice(slash + 1);
  const a = parseIpv6(addr);
  if (!a.ok || !/^\d{1,3}$/.test(bitsText) || Number(bitsText) > 128) { fail(`invalid IPv6 address or prefix "${t}"`); return undefined; }
  const bits = Number(bitsText);
  const net = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) net[i] = a.value[i]! & prefixByte(bits, i);
  return { kind: 'cidr6', net, bits, text: t };
}

/** The mask byte i of an IPv6 prefix of `bits` bits. */
function prefixByte(bits: number, i: number): number {
  const left = bits - 8 * i;
  return left >= 8 ? 0xff : left <= 0 ? 0 : (0xff << (8 - left)) & 0xff;
}

/** An address as the matchers pass it: IPv4 as its 32-bit number, IPv6 as its 16 bytes. */
export type MatchAddr = number | Buffer;

export function parsePorts(tok: string, vars: Record<string, string>, fail: (m: string) => void, depth = 0): PortNode | undefined {
  const t = tok.trim();
  if (t === 'any') return { kind: 'any' };
  if (t.startsWith('!')) {
    const inner = parsePorts(t.slice(1), vars, fail, depth);
    if (!inner) return undefined;
    if (inner.kind === 'any') { fail('"!any" matches nothing'); return undefined; }
    return { kind: 'not', node: inner };
  }
  if (t.startsWith('$')) {
    const v = resolveVar(t, vars, fail, depth);
    return v === undefined ? undefined : parsePorts(v, vars, fail, depth + 1);
  }
  if (t.startsWith('[')) {
    if (!t.endsWith(']')) { fail(`unbalanced brackets in "${t}"`); return undefined; }
    const parts = splitList(t.slice(1, -1));
    if (!parts || parts.some((p) => !p)) { fail(`malformed list "${t}"`); return undefined; }
    const items: PortNode[] = [];
    for (const p of parts) {
      const n = parsePorts(p, vars, fail, depth);
      if (!n) return undefined;
      items.push(n);
    }
    return { kind: 'list', items };
  }
  const m = /^(\d{0,5})(:?)(\d{0,5})$/.exec(t);
  if (!m || (!m[1] && !m[3]) || (!m[2] && m[3])) { fail(`invalid port "${t}" (use any, N, a:b, :b, a:, [list], !x, $VAR)`); return undefined; }
  const lo = m[1] ? Number(m[1]) : 0;
  const hi = m[2] ? (m[3] ? Number(m[3]) : 65535) : lo;
  if (lo > 65535 || hi > 65535) { fail(`port out of range in "${t}"`); return undefined; }
  if (lo > hi) { fail(`empty port range "${t}"`); return undefined; }
  return { kind: 'range', lo, hi };
}

/** A list matches if some positive item matches (or there are none) and no negated item does. */
export function addrMatch(n: AddrNode, ip: MatchAddr): boolean {
  switch (n.kind) {
    case 'any': return true;
    case 'cidr': return typeof ip === 'number' && ((ip & n.mask) >>> 0) === n.net;
    case 'cidr6': {
      if (typeof ip === 'number') return false;
      for (let i = 0; i < 16; i++) if ((ip[i]! & prefixByte(n.bits, i)) !== n.net[i]) return false;
      return true;
    }
    case 'not': return !addrMatch(n.node, ip);
    case 'list': return listMatch(n.items, (x) => addrMatch(x, ip));
  }
}

export function portMatch(n: PortNode, port: number): boolean {
  switch (n.kind) {
    case 'any': return true;
    case 'range': return port >= n.lo && port <= n.hi;
    case 'not': return !portMatch(n.node, port);
    case 'list': return listMatch(n.items, (x) => portMatch(x, port));
  }
}

function listMatch<T extends { kind: string }>(items: T[], m: (x: T) => boolean): boolean {
  const pos = items.filter((x) => x.kind !== 'not');
  const neg = items.filter((x) => x.kind === 'not');
  return (pos.length === 0 || pos.some(m)) && neg.every(m);
}
