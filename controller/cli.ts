// `tcp-migrate` command line: runs the controller (with its HTTP API), validates configs, and
// talks to a running controller's API (status, migrate, flows, capture, reload).
// Exit codes: 0 ok, 1 request refused or failed, 2 bad usage or config, 3 API unreachable,
// 4 authentication refused (401/403), 5 not found (404).
import { createWriteStream, type WriteStream } from 'node:fs';
import { Command, CommanderError, Option, InvalidArgumentError } from 'commander';
import { Controller } from './controller.ts';
import { ConfigError, DEFAULT_CONFIG, loadConfigFile, parseConfig, type ControllerConfig } from './config.ts';
import { endpoints } from './handoff/service-config.ts';
import { LOG_LEVELS, Logger, type LogLevel } from './log.ts';
import { ApiServer } from './api/api-server.ts';
import { ApiClient, ApiClientError } from './api/client.ts';
import { Reloader, controllerApplier, type HandoffTuner, type ServiceReconfigurer } from './reload/reloader.ts';
import { registerRulesCommands } from './analyzers/rules-cli.ts';

export const EXIT = { ok: 0, failed: 1, usage: 2, unreachable: 3, auth: 4, notFound: 5 } as const;

const DEFAULT_API = `http://${DEFAULT_CONFIG.api.host}:${DEFAULT_CONFIG.api.port}`;

function parsePort(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port number 0-65535');
  return n;
}

function parsePositiveInt(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > 1e9) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

function parseSeconds(v: string): number {
  const n = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v) || !(n > 0) || n > 86400) throw new InvalidArgumentError('expected a number of seconds in (0, 86400]');
  return n;
}

interface ControllerOpts { config?: string; listen?: string; port?: number; logLevel?: LogLevel; logFormat?: 'json' | 'text'; api?: boolean; apiHost?: string; apiPort?: number }

function loadConfig(path: string | undefined, o: ControllerOpts): ControllerConfig {
  const cfg = path ? loadConfigFile(path) : parseConfig({});
  const next = structuredClone(cfg);
  if (o.listen) next.listen.host = o.listen;
  if (o.port !== undefined) next.listen.port = o.port;
  if (o.logLevel) next.log.level = o.logLevel;
  if (o.logFormat) next.log.format = o.logFormat;
  if (o.api === false) next.api.enabled = false;
  if (o.apiHost) next.api.host = o.apiHost;
  if (o.apiPort !== undefined) next.api.port = o.apiPort;
  return parseConfig(next);
}

// ------------------------------------------------------------------ output helpers

/** A plain text table: columns padded to their widest cell. */
export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd()).join('\n');
}

function bytes(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`;
}

function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m${s % 60}s` : `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

// ------------------------------------------------------------------ the program

interface ClientOpts { api: string; token?: string; json?: boolean }

function withApiOptions(cmd: Command, json = true): Command {
  cmd.addOption(new Option('--api <url>', 'controller API base URL').env('TCP_MIGRATE_API').default(DEFAULT_API));
  cmd.addOption(new Option('--token <token>', 'API token (api.token in the controller config) for changes').env('TCP_MIGRATE_TOKEN'));
  if (json) cmd.option('--json', 'print the API\'s JSON instead of tables');
  return cmd;
}

function client(o: ClientOpts): ApiClient { return new ApiClient({ base: o.api, token: o.token }); }

const program = new Command('tcp-migrate')
  .description('OpenFlow 1.3 controller that hands live TCP connections from one server to another')
  .showHelpAfterError()
  .exitOverride();
program.addHelpText('after', `
Exit codes: 0 ok, 1 request refused or failed, 2 bad usage or config, 3 API unreachable,
4 authentication refused, 5 not found.
Client commands read --api / --token from TCP_MIGRATE_API / TCP_MIGRATE_TOKEN when not given.`);

program.command('controller')
  .description('run the controller (and its HTTP API unless api.enabled is false)')
  .option('-c, --config <file>', 'JSON config file (see docs/configuration.md)')
  .option('--listen <host>', `address to listen on for switches (default ${DEFAULT_CONFIG.listen.host}; '::' for IPv6)`)
  .option('-p, --port <port>', `OpenFlow port (default ${DEFAULT_CONFIG.listen.port})`, parsePort)
  .option('--api-host <host>', `address of the HTTP API (default ${DEFAULT_CONFIG.api.host})`)
  .option('--api-port <port>', `port of the HTTP API (default ${DEFAULT_CONFIG.api.port}; 0 picks a free one)`, parsePort)
  .option('--no-api', 'do not start the HTTP API')
  .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS as string[]))
  .addOption(new Option('--log-format <format>', 'log format').choices(['json', 'text']))
  .action(async (opts: ControllerOpts) => {
    const cfg = loadConfig(opts.config, opts);
    const log = new Logger(cfg.log.level, cfg.log.format);
    const controller = new Controller(cfg, log);
    const reloader = makeReloader(controller, cfg, opts, log);
    const api = cfg.api.enabled ? new ApiServer(controller, cfg.api, log.child({ component: 'api' }), reloader) : undefined;
    let state: 'starting' | 'running' | 'stopping' = 'starting';
    // Installed before anything starts: SIGHUP's default action would end the process.
    process.on('SIGHUP', () => {
      if (state !== 'running') { log.warn(`SIGHUP ignored: the controller is ${state}`); return; }
      void reloader.reload('SIGHUP'); // logs its outcome; never exits
    });
    // The API starts first so that it sees every switch and connection event from the beginning.
    try { await api?.start(); } catch (e) {
      throw new Error(`cannot start the HTTP API on ${cfg.api.host}:${cfg.api.port}: ${(e as Error).message}`);
    }
    try { await controller.start(); } catch (e) {
      await api?.stop();
      throw e;
    }
    state = 'running';
    // Stopping closes the switch channels and leaves every flow in place (nothing is deleted):
    // established connections keep flowing through the switch while the controller is away.
    const shutdown = (sig: string) => {
      if (state === 'stopping') return;
      state = 'stopping';
      log.info('shutting down', { signal: sig });
      // A reload in progress finishes first, so the switch is never left with half-reinstalled intercept flows.
      reloader.close()
        .then(() => Promise.all([api?.stop(), controller.stop()]))
        .then(() => process.exit(0), () => process.exit(1));
    };
    process.once('SIGINT', () => shutdown('SIGINT'));
    process.once('SIGTERM', () => shutdown('SIGTERM'));
  });

/**
 * The reloader of `tcp-migrate controller`: re-reads the config file with the same command-line
 * overrides (without --config, only the rule files are re-read) and applies it to the controller.
 */
function makeReloader(controller: Controller, cfg: ControllerConfig, opts: ControllerOpts, log: Logger): Reloader {
  let running = cfg;
  const engine: ServiceReconfigurer & HandoffTuner = controller.engine;
  const applyTo = controllerApplier({ log, analyzers: controller.analyzers, engine });
  return new Reloader({
    load: opts.config ? () => loadConfig(opts.config, opts) : undefined,
    // The engine's services include backends added or removed through the API since the last load.
    getConfig: () => ({ ...running, services: controller.engine.listServices() }),
    apply: async (next, diff) => {
      const lines = await applyTo(next, diff);
      running = next;
      return lines;
    },
    log: log.child({ component: 'reload' }),
  });
}

program.command('check-config')
  .description('validate a config file and print it with defaults filled in')
  .argument('<file>', 'JSON config file')
  .action((file: string) => {
    console.log(JSON.stringify(loadConfigFile(file), null, 2));
  });

registerRulesCommands(program);

withApiOptions(program.command('status')
  .description('show switches, services, connections and recent migrations of a running controller'))
  .action(async (o: ClientOpts) => {
    const api = client(o);
    // /api/analyzers is newer than the rest: an older controller simply shows no analyzer section.
    const [sw, sv, cn, mg, an] = await Promise.all([api.get('/api/switches'), api.get('/api/services'), api.get('/api/connections'), api.get('/api/migrations'), api.get('/api/analyzers').catch(() => undefined)]);
    if (o.json) { console.log(JSON.stringify({ controller: sw.controller, switches: sw.switches, services: sv.services, connections: cn.connections, migrations: mg.migrations, analyzers: an }, null, 2)); return; }
    const now = Date.now();
    const out: string[] = [];
    if (sw.controller) out.push(`Controller: ${sw.controller.role}${sw.controller.generationId ? ` (generation ${sw.controller.generationId})` : ''}`, ...loadLines(sw.controller.load), '');
    out.push(`Switches (${sw.switches.length})`);
    out.push(sw.switches.length ? table(['DPID', 'REMOTE', 'MODE', 'CONNECTED'], sw.switches.map((s: any) => [s.dpid, s.remote, s.mode, `${s.connectedSince} (${age(now - Date.parse(s.connectedSince))})`])) : '  none connected');
    out.push('', `Services (${sv.services.length})`);
    out.push(sv.services.length ? table(['NAME', 'ADDRESS', 'PRIMARY', 'MIGRATE TO', 'BACKENDS (connections)'], sv.services.map((s: any) => [
      s.name, endpoints(s), s.primary, s.migrateTo ?? '-', s.backends.map((b: any) => `${b.name}=${endpoints(b).replace(' ', ',')}(${b.connections})`).join(' '),
    ])) : '  none configured');
    if (an) out.push('', ...analyzerLines(an, now));
    out.push('', `Connections (${cn.connections.length})`);
    out.push(cn.connections.length ? table(['ID', 'SERVICE', 'CLIENT', 'BACKEND', 'PHASE', 'TCP CLIENT/SERVER', 'ACK DELTA', 'MOVES', 'AGE'], cn.connections.map((c: any) => [
      c.id, c.service, c.client, `${c.backend} (${c.backendAddress})`, c.conntrack ? `${c.phase} (conntrack)` : c.phase, `${c.tcp.client}/${c.tcp.server}`, c.ackDelta, c.migrations, age(now - c.createdAt),
    ])) : '  none');
    if (mg.migrations.length) {
      out.push('', `Recent migrations (${mg.migrations.length})`);
      out.push(table(['TIME', 'CONN', 'CLIENT', 'FROM', 'TO', 'LATENCY', 'KIND'], mg.migrations.slice(-10).map((m: any) => [
        m.time, m.connection, m.client, m.from, m.to, `${m.latencyMs} ms`, m.midStream ? 'mid-stream' : 'first segment',
      ])));
    }
    console.log(out.join('\n'));
  });

/** Budgets of the connection table and what was refused under load (a SYN flood shows here). */
function loadLines(l: any): string[] {
  if (!l) return [];
  const r = l.refused;
  return [
    `Load: ${l.halfOpen} handshake(s) in progress (budget ${l.halfOpenMax}, ${l.halfOpenPerSource} per source), ${l.established} connection(s) (budget ${l.maxConnections}, when full: ${l.whenFull})`,
    `  refused SYNs: ${r.tableFull} table full, ${r.halfOpenEvicted} evicted handshakes, ${r.halfOpenPerSource} over a source's budget`,
  ];
}

/** The status section on analyzers: each IDS's health, and the verdict timeouts per service. */
function analyzerLines(an: any, now: number): string[] {
  const out = [`Analyzers (${an.analyzers.length + (an.builtin ? 1 : 0)})`];
  const since = (t?: string) => (t ? `${age(now - Date.parse(t))} ago` : 'never');
  const rows = an.analyzers.map((h: any) => [h.analyzer, h.state.toUpperCase(), since(h.lastRecordAt), since(h.lastAlertAt), h.lastHeartbeatAt ? since(h.lastHeartbeatAt) : '-', h.peers ?? '-', h.timeoutsSinceRecord, h.reason ?? '']);
  if (an.builtin) rows.push(['builtin', 'UP', '-', '-', '-', '-', 0, 'in the controller']);
  out.push(rows.length ? table(['ANALYZER', 'STATE', 'LAST RECORD', 'LAST ALERT', 'HEARTBEAT', 'PEERS', 'TIMEOUTS SINCE', 'REASON'], rows) : '  none configured');
  const t = Object.entries(an.verdictTimeouts ?? {}).map(([s, n]) => `${s}=${n}`).join(' ');
  out.push(`  verdict timeouts: ${t || 'none'}; no rule matched (IDS said so): ${an.noMatch?.applied ?? 0}`);
  return out;
}

withApiOptions(program.command('migrate')
  .description('move a connection (by id) or every connection of a service (by name) to another backend')
  .argument('<target>', 'connection id (a number) or service name')
  .option('--to <backend>', 'backend to move to')
  .option('--cancel', 'call off a mid-stream move that still waits for the client (connection id only)'))
  .action(async (target: string, o: ClientOpts & { to?: string; cancel?: boolean }, cmd: Command) => {
    const api = client(o);
    const isConn = /^\d+$/.test(target);
    if (o.cancel) {
      if (!isConn) cmd.error('error: --cancel takes a connection id');
      const r = await api.delete(`/api/connections/${target}/migrate`);
      if (o.json) { console.log(JSON.stringify(r, null, 2)); return; }
      console.log(r.message);
      return;
    }
    if (!o.to) cmd.error("error: required option '--to <backend>' not specified (or --cancel to call off a waiting move)");
    const path = isConn ? `/api/connections/${target}/migrate` : `/api/services/${encodeURIComponent(target)}/migrate`;
    const r = await api.post(path, { to: o.to });
    if (o.json) { console.log(JSON.stringify(r, null, 2)); return; }
    if (isConn) console.log(`${r.message} (now ${r.connection.phase} on ${r.connection.backend})`);
    else console.log(`${r.message}${r.connections.length ? `: ${r.connections.map((c: any) => c.id).join(', ')}` : ''}`);
  });

withApiOptions(program.command('flows')
  .description('show each connection\'s flows on its switch (and, on a fabric, its transit flows elsewhere), with packet and byte counts')
  .option('--service <name>', 'only this service\'s connections')
  .option('--id <conn-id>', 'only this connection', (v) => String(parsePositiveInt(v))))
  .action(async (o: ClientOpts & { service?: string; id?: string }) => {
    const q = new URLSearchParams();
    if (o.service) q.set('service', o.service);
    if (o.id) q.set('id', o.id);
    const r = await client(o).get(`/api/flows${q.size ? `?${q}` : ''}`);
    if (o.json) { console.log(JSON.stringify(r, null, 2)); return; }
    const out: string[] = [];
    for (const s of r.switches) if (s.error) out.push(`switch ${s.dpid}: flow stats failed: ${s.error}`);
    if (r.connections.length === 0) out.push('no connections');
    for (const c of r.connections) {
      out.push(`connection ${c.id}  ${c.service}  ${c.client} -> ${c.backend}  ${c.phase}  switch ${c.dpid}  ${c.packets} packets  ${bytes(c.bytes)}`);
      if (c.flows.length === 0) { out.push('  (no flows installed)'); continue; }
      out.push(table(['  ROLE', 'DIRECTION', 'PRIO', 'PACKETS', 'BYTES', 'AGE', 'MATCH', 'ACTIONS'], c.flows.map((f: any) => [
        `  ${f.role}${f.dpid ? ` (switch ${f.dpid})` : ''}`, f.direction ?? '-', f.priority, f.packets, f.bytes, `${f.durationSec}s`, f.match, f.actions,
      ])));
    }
    console.log(out.join('\n'));
  });

withApiOptions(program.command('capture')
  .description('write the frames the controller receives (Packet-In) and sends (Packet-Out) to a pcap file')
  .requiredOption('--pcap <file>', "pcap file to write ('-' for standard output, e.g. | tcpdump -r -)")
  .option('--count <n>', 'stop after n frames', parsePositiveInt)
  .option('--seconds <s>', 'stop after s seconds', parseSeconds), false)
  .action(async (o: ClientOpts & { pcap: string; count?: number; seconds?: number }) => {
    const api = client(o);
    const q = new URLSearchParams();
    if (o.count !== undefined) q.set('count', String(o.count));
    if (o.seconds !== undefined) q.set('seconds', String(o.seconds));
    const abort = new AbortController();
    const res = await api.stream(`/api/capture${q.size ? `?${q}` : ''}`, abort.signal);
    const file: WriteStream | undefined = o.pcap === '-' ? undefined : createWriteStream(o.pcap);
    const out: NodeJS.WritableStream = file ?? process.stdout;
    const fileError = new Promise<never>((_, reject) => out.once('error', (e: Error) => reject(new Error(`cannot write ${o.pcap}: ${e.message}`))));
    fileError.catch(() => abort.abort());
    let frames = 0;
    let pending = 24; // bytes until the next record header, starting with the global header
    let inHeader = false;
    let hdr = Buffer.alloc(0);
    const onSignal = () => abort.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      const copy = (async () => {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          const buf = Buffer.from(chunk);
          if (!out.write(buf)) await new Promise((r) => out.once('drain', r));
          // Walk record boundaries to count whole frames.
          let off = 0;
          while (off < buf.length) {
            if (inHeader) {
              const need = 16 - hdr.length;
              hdr = Buffer.concat([hdr, buf.subarray(off, off + need)]);
              off += Math.min(need, buf.length - off);
              if (hdr.length === 16) { inHeader = false; pending = hdr.readUInt32LE(8); hdr = Buffer.alloc(0); frames++; }
              continue;
            }
            const take = Math.min(pending, buf.length - off);
            off += take;
            pending -= take;
            if (pending === 0) inHeader = true;
          }
        }
      })();
      copy.catch(() => undefined); // its failure is reported through the race below
      await Promise.race([copy, fileError]);
    } catch (e) {
      if ((e as Error).name !== 'AbortError') throw e;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    if (file) await new Promise<void>((resolve, reject) => { file.once('error', reject); file.end(() => resolve()); });
    console.error(`captured ${frames} frame(s) to ${o.pcap === '-' ? 'standard output' : o.pcap}`);
  });

withApiOptions(program.command('reload')
  .description('reload the config file and the rule files of a running controller (as SIGHUP does)'))
  .action(async (o: ClientOpts) => {
    let r: { changes: string[]; restartNeeded: string[] };
    try { r = await client(o).post('/api/reload', {}); } catch (e) {
      // An invalid config/rule file (400) or a refused change (409): say that nothing changed.
      if (e instanceof ApiClientError && (e.status === 400 || e.status === 409)) {
        console.error(`tcp-migrate: reload failed: ${e.message}\nthe running configuration is unchanged`);
        process.exitCode = e.status === 400 ? EXIT.usage : EXIT.failed;
        return;
      }
      throw e;
    }
    if (o.json) { console.log(JSON.stringify(r, null, 2)); return; }
    const out = [r.changes.length ? `reloaded: ${r.changes.length} change(s)` : 'reloaded: no changes', ...r.changes.map((c) => `  ${c}`)];
    if (r.restartNeeded.length) out.push('not applied, needs a restart:', ...r.restartNeeded.map((c) => `  ${c}`));
    console.log(out.join('\n'));
  });

function exitCodeFor(e: ApiClientError): number {
  if (e.status === 0) return EXIT.unreachable;
  if (e.status === 401 || e.status === 403) return EXIT.auth;
  if (e.status === 404) return EXIT.notFound;
  return EXIT.failed;
}

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    // Help and version end here with 0; commander has already printed usage errors.
    process.exit(e.exitCode === 0 ? EXIT.ok : EXIT.usage);
  }
  if (e instanceof ConfigError) {
    console.error(`tcp-migrate: ${e.message}`);
    process.exit(EXIT.usage);
  }
  if (e instanceof ApiClientError) {
    console.error(`tcp-migrate: ${e.status ? `${e.status}: ` : ''}${e.message}`);
    process.exit(exitCodeFor(e));
  }
  console.error(`tcp-migrate: ${(e as Error).message}`);
  process.exit(EXIT.failed);
}
