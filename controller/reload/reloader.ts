// Reloads the config file (and the rule files it names) into a running controller: SIGHUP, the
// API's POST /api/reload and `tcp-migrate reload` all end here. A reload is all or nothing:
// everything that can fail (reading, validating, parsing rules, the engine's checks) happens
// before anything changes, and a failed reload leaves the running configuration as it was.
import { ConfigError, type ControllerConfig } from '../config.ts';
import { RuleParseError } from '../analyzers/rules.ts';
import type { LogLevel, Logger } from '../log.ts';
import type { ServiceConfig } from '../handoff/service-config.ts';
import { diffConfig, type ConfigDiff, type HandoffTimeouts } from './config-diff.ts';

export type ReloadResult =
  | { ok: true; changes: string[]; restartNeeded: string[] }
  /** status: 400 invalid config or rules, 409 refused (busy backend, address change), 500 otherwise. */
  | { ok: false; error: string; status: number };

export interface ReloaderOptions {
  /** Reads and validates the config file (with any command-line overrides); absent: rules-only reloads. */
  load?: () => ControllerConfig | Promise<ControllerConfig>;
  /** The configuration running now, services as the engine has them (API changes included). */
  getConfig: () => ControllerConfig;
  /**
   * Applies `next` (diff.next). Must change nothing when it throws; returns change lines found
   * while applying (rules reloaded), which are added to the diff's.
   */
  apply: (next: ControllerConfig, diff: ConfigDiff) => Promise<string[]>;
  log: Logger;
}

export class Reloader {
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  readonly stats = { reloads: 0, failures: 0 };

  constructor(private readonly opts: ReloaderOptions) {}

  /** Reloads once; concurrent calls run one after the other (each sees the previous one's result). */
  reload(trigger = 'api'): Promise<ReloadResult> {
    const run = this.queue.then(() => this.reloadNow(trigger));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Refuses further reloads and waits for the one in progress (shutdown must not cut one in half). */
  async close(): Promise<void> {
    this.closed = true;
    await this.queue;
  }

  private async reloadNow(trigger: string): Promise<ReloadResult> {
    const log = this.opts.log;
    if (this.closed) return { ok: false, error: 'the controller is shutting down', status: 503 };
    let result: ReloadResult;
    try {
      const running = this.opts.getConfig();
      // Without a config file the running config is "reloaded" as is: only the rule files are re-read.
      const loaded = this.opts.load ? await this.opts.load() : structuredClone(running);
      const diff = diffConfig(running, loaded);
      const extra = await this.opts.apply(diff.next, diff);
      result = { ok: true, changes: mergeLines(diff.changes, extra), restartNeeded: diff.restartNeeded };
    } catch (e) {
      result = { ok: false, error: (e as Error).message, status: statusOf(e) };
    }
    if (result.ok) {
      this.stats.reloads++;
      log.info('config reloaded', { trigger, changes: result.changes, restartNeeded: result.restartNeeded });
    } else {
      this.stats.failures++;
      log.error('config reload failed; the running configuration is unchanged', { trigger, error: result.error });
    }
    return result;
  }
}

/**
 * The diff's lines, then apply's that say something new: "services.web: added (10.0.0.1:80)"
 * from the engine repeats the diff's "services.web: added (10.0.0.1:80, backends w1)".
 */
function mergeLines(diff: string[], extra: string[]): string[] {
  const gist = (l: string) => l.replace(/\s*\(.*\)$/, '');
  const seen = new Set(diff.map(gist));
  const out = [...diff];
  for (const l of extra) if (!seen.has(gist(l))) { seen.add(gist(l)); out.push(l); }
  return out;
}

/** Config and rule errors carry no status (400); refusals and engine errors carry theirs. */
function statusOf(e: unknown): number {
  const s = (e as { status?: unknown }).status;
  if (typeof s === 'number' && s >= 400 && s <= 599) return s;
  return e instanceof ConfigError || e instanceof RuleParseError ? 400 : 500;
}

// ------------------------------------------------------------------ applying to a controller

/** What the handoff engine offers a reload (the engine implements it; throws EngineError(409) to refuse). */
export interface ServiceReconfigurer {
  reconfigureServices(next: ServiceConfig[]): Promise<string[]>;
}

/** Live handoff timeouts (the engine reads them whenever it arms a timer). */
export interface HandoffTuner {
  setHandoffTimeouts(t: HandoffTimeouts): void;
}

/** The analyzers' two-phase reload (AnalyzerBridge.prepareReload). */
export interface AnalyzerReloader {
  prepareReload(cfg: ControllerConfig['analyzers']): Promise<{ changes: string[]; commit(): void }>;
}

export interface ControllerParts {
  log: { setLevel(level: LogLevel): void };
  analyzers: AnalyzerReloader;
  engine: ServiceReconfigurer & HandoffTuner;
}

/**
 * The usual `apply`: rules are parsed first (a bad rule refuses the reload before anything
 * changes), then the engine reconfigures its services if they changed (it refuses, changing
 * nothing, when a removed backend is busy), and only then the rules, timeouts and log level
 * switch over. Unchanged services are left alone: no intercept flows are rewritten for nothing.
 */
export function controllerApplier(parts: ControllerParts): (next: ControllerConfig, diff: Pick<ConfigDiff, 'servicesChanged' | 'timeoutsChanged'>) => Promise<string[]> {
  return async (next, diff) => {
    const rules = await parts.analyzers.prepareReload(next.analyzers);
    const serviceLines = diff.servicesChanged ? await parts.engine.reconfigureServices(next.services) : [];
    rules.commit();
    if (diff.timeoutsChanged) {
      const { handshakeTimeoutMs, replayTimeoutMs, closeGraceMs, revalidateMs, releaseBeforeBarrier } = next.handoff;
      parts.engine.setHandoffTimeouts({ handshakeTimeoutMs, replayTimeoutMs, closeGraceMs, revalidateMs, releaseBeforeBarrier });
    }
    parts.log.setLevel(next.log.level);
    return [...serviceLines, ...rules.changes];
  };
}
