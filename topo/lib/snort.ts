// Snort 3 live on an IDS host's interface (the switch's mirror port), alerts as Alertpkt datagrams
// to the unix sockets the controller has bound: the documented command line (snortArgs), a start
// that waits for every packet thread, and Snort's own reload (SIGHUP) that waits for completion.
// Used by the tests, the demo and the benchmarks; topo/netns_topo.sh and topo/mininet_topo.py run
// the same command.
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import type { ChildProcess } from 'node:child_process';
import { exportRuleFiles } from '../../controller/analyzers/rules-export.ts';
import { formatRuleError } from '../../controller/analyzers/rules.ts';
import { run } from './exec.ts';
import type { Host } from './netns.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The Snort 3 configuration shipped with the rules (HOME_NET, alert_unixsock; no rules). */
export const SNORT3_CONFIG = join(ROOT, 'snort-rules', 'snort3.lua');
/** The rule file users edit, and its Snort 3 export (kept identical by a test). */
export const RULES = join(ROOT, 'snort-rules', 'migrate.rules');
export const SNORT3_RULES = join(ROOT, 'snort-rules', 'migrate.snort3.rules');

export interface SnortOptions {
  /** Snort 3 rule file (default: snort-rules/migrate.snort3.rules). */
  rules?: string;
  /** -l: alerts go to <logDir>/snort_alert (or <logDir>/<i>_snort_alert with several threads). */
  logDir: string;
  /** -i (default eth0). */
  iface?: string;
  /** -z: packet threads; more than one also sets --daq-var fanout_type=hash (each flow to one thread). */
  threads?: number;
  /** -u / -g: the user and group Snort runs as once started. */
  user?: string;
  group?: string;
  config?: string;
}

/**
 * The documented command (docs/analyzers.md, snort-rules/README.md): rules once (-R; the config
 * includes none), the afpacket DAQ (the default pcap DAQ delivers alerts in late batches),
 * alert_unixsock into the log directory.
 */
export function snortArgs(o: SnortOptions): string[] {
  const args = ['snort', '-c', o.config ?? SNORT3_CONFIG, '-R', o.rules ?? SNORT3_RULES,
    '--daq', 'afpacket', '-i', o.iface ?? 'eth0', '-A', 'alert_unixsock', '-l', o.logDir, '-k', 'none'];
  if ((o.threads ?? 1) > 1) args.push('-z', String(o.threads), '--daq-var', 'fanout_type=hash');
  if (o.user) args.push('-u', o.user);
  if (o.group) args.push('-g', o.group);
  return args;
}

/** Snort's version ("3.12.2.0"), or null when `snort` is not installed (topo/install-snort.sh). */
export async function snortVersion(): Promise<string | null> {
  try {
    const r = await run('snort', ['-V'], { allowFail: true, timeoutMs: 10000 });
    return /Version (\d[\w.]*)/.exec(r.stdout + r.stderr)?.[1] ?? null;
  } catch {
    return null;
  }
}

/** Writes the Snort 3 export of `sources` (the rule files users edit) to `path`; throws naming file:line on errors. */
export async function exportSnort3Rules(sources: string[], path: string): Promise<string> {
  const r = await exportRuleFiles(sources, 'snort3');
  if (r.errors.length) throw new Error(`cannot export the rules for Snort 3:\n${r.errors.map(formatRuleError).join('\n')}`);
  writeFileSync(path, r.text);
  return path;
}

export interface LiveSnort {
  proc: ChildProcess;
  /** Every line Snort printed so far (stdout and stderr). */
  readonly output: string[];
  /**
   * SIGHUP: Snort re-reads its config and rule files; resolves once it says the reload is complete,
   * rejects (naming Snort's ERROR lines, e.g. `file:line unknown rule keyword`) when it failed.
   */
  reload(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts Snort 3 in `ids`'s namespace with snortArgs(o); resolves once every packet thread has
 * started capturing and, with -u/-g, Snort has dropped its privileges. stdbuf makes Snort's
 * progress lines arrive as printed (they are block-buffered into a pipe otherwise).
 */
export async function startLiveSnort(ids: Host, o: SnortOptions & { timeoutMs?: number }): Promise<LiveSnort> {
  const proc = ids.spawn(['stdbuf', '-oL', '-eL', ...snortArgs(o)]);
  const output: string[] = [];
  const waiters = new Set<(l: string) => void>();
  const onLine = (l: string) => { output.push(l); for (const w of [...waiters]) w(l); };
  createInterface({ input: proc.stdout! }).on('line', onLine);
  createInterface({ input: proc.stderr! }).on('line', onLine);
  const tail = () => output.slice(-8).join(' | ');
  const stop = async () => { if (proc.exitCode === null && proc.signalCode === null) { proc.kill('SIGTERM'); await once(proc, 'exit'); } };
  /**
   * Resolves with the first line from output[from] on for which `done` is true (lines already
   * printed count too); rejects on an ERROR/FATAL line, on exit, or after timeoutMs.
   */
  const until = (what: string, from: number, done: (l: string) => boolean, timeoutMs: number, failOnError = true) => new Promise<string>((resolve, reject) => {
    const finish = (e: Error | undefined, line = '') => { clearTimeout(t); waiters.delete(w); proc.off('exit', onExit); if (e) reject(e); else resolve(line); };
    const w = (l: string) => {
      if (failOnError && /^(FATAL|ERROR)\b/.test(l)) finish(new Error(`Snort: ${l} (${tail()})`));
      else if (done(l)) finish(undefined, l);
    };
    const onExit = (code: number | null) => finish(new Error(`Snort exited (${code}) before ${what}: ${tail()}`));
    const t = setTimeout(() => finish(new Error(`Snort did not ${what} within ${timeoutMs} ms: ${tail()}`)), timeoutMs);
    waiters.add(w);
    proc.once('exit', onExit);
    for (const l of output.slice(from)) w(l);
  });
  const threads = o.threads ?? 1;
  const iface = o.iface ?? 'eth0';
  // Ready: every packet thread captures ("++ [i] eth0"), and with -u/-g the privileges are
  // dropped ("Set UID to …" / "Set GID to …", printed after the threads started).
  const started = new Set<string>();
  const last = o.user ? /^Set UID to / : o.group ? /^Set GID to / : undefined;
  let dropped = !last;
  try {
    await until(`start ${threads} packet thread(s)${last ? ' and drop its privileges' : ''}`, 0, (l) => {
      if (l.startsWith('++ [') && l.endsWith(`] ${iface}`)) started.add(l);
      if (last?.test(l)) dropped = true;
      return started.size === threads && dropped;
    }, o.timeoutMs ?? 60000);
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    proc, output, stop,
    reload: async (timeoutMs = 60000) => {
      const from = output.length;
      const done = until('complete a reload', from, (l) => /^== reload (complete|failed)/.test(l), timeoutMs, false);
      proc.kill('SIGHUP');
      const line = await done;
      if (/failed/.test(line)) {
        const errors = output.slice(from).filter((l) => /^(ERROR|FATAL)\b/.test(l));
        throw new Error(`Snort ${line.slice(3)}; its old rules stay in force: ${errors.join('; ')}`);
      }
    },
  };
}
