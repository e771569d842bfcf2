// `npm run demo`: the whole migration story on this machine, from nothing installed to a verified
// transfer from a migrated connection. Run as root. Ctrl-C (or the end) removes everything it made.
//
//   npm run demo [-- --no-install] [-- --analyzer builtin|suricata|snort] [-- --mb 64]
// (topo/demo.sh installs what is missing, npm packages included, then runs this with --installed)
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { Ovs, PATCHED_PREFIX, STOCK_PREFIX, supportsSeqActions } from './lib/ovs.ts';
import { TestNet, type Host } from './lib/netns.ts';
import { run, waitFor } from './lib/exec.ts';
import { ScriptClient } from './lib/script-client.ts';
import { startLiveSuricata } from './lib/suricata.ts';
import { exportSnort3Rules, snortVersion, startLiveSnort } from './lib/snort.ts';
import { blobChunk } from './apps/blob.mjs';
import { Controller } from '../controller/controller.ts';
import { parseConfig } from '../controller/config.ts';
import { Logger } from '../controller/log.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const APPS = join(ROOT, 'topo', 'apps');
const RULES = join(ROOT, 'snort-rules', 'migrate.rules');
/** The IDS's "inspected, nothing matched" marker (docs/analyzers.md): a no-match connection is forwarded at once. */
const NO_MATCH_RULES = join(ROOT, 'snort-rules', 'no-match.rules');
const argv = process.argv.slice(2);
const flag = (k: string) => argv.includes(`--${k}`);
const opt = (k: string, d: string) => { const i = argv.indexOf(`--${k}`); return i >= 0 && argv[i + 1] ? argv[i + 1] : d; };
const MB = Number(opt('mb', '64'));

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const say = (s = '') => console.log(s);
const step = (n: number, s: string) => say(`\n${bold(`[${n}/6] ${s}`)}`);

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) { console.error('npm run demo: run as root (it creates namespaces and an Open vSwitch bridge)'); process.exit(1); }
  const cleanups: (() => Promise<void> | void)[] = [];
  let cleaning = false;
  const cleanup = async () => {
    if (cleaning) return;
    cleaning = true;
    for (const f of cleanups.reverse()) { try { await f(); } catch { /* keep cleaning */ } }
  };
  process.once('SIGINT', () => { say('\ninterrupted: cleaning up'); cleanup().then(() => process.exit(130)); });
  process.once('SIGTERM', () => { cleanup().then(() => process.exit(143)); });

  try {
    if (!flag('installed')) {
      step(1, 'Setting up what is missing');
      if (flag('no-install')) say('  skipped (--no-install)');
      else await runVisible('bash', [join(ROOT, 'topo', 'install-deps.sh')]);
    }

    step(2, 'Starting the switch');
    const patched = await supportsSeqActions(PATCHED_PREFIX);
    const ovs = await Ovs.start({ prefix: patched ? PATCHED_PREFIX : STOCK_PREFIX });
    cleanups.push(() => ovs.stop());
    say(patched
      ? `  patched Open vSwitch (${PATCHED_PREFIX}): sequence shifts run in the datapath`
      : `  stock Open vSwitch (${STOCK_PREFIX}): no patch found, migrated connections are relayed by the controller`);

    const want = opt('analyzer', '');
    if (want && !['builtin', 'suricata', 'snort'].includes(want)) throw new Error(`--analyzer ${want}: expected builtin, suricata or snort`);
    const haveSuricata = (await run('sh', ['-c', 'command -v suricata'], { allowFail: true })).code === 0;
    const analyzer = want === 'snort' ? 'snort' : want === 'builtin' || (!want && !haveSuricata) ? 'builtin' : 'suricata';
    if (analyzer === 'suricata' && !haveSuricata) throw new Error('--analyzer suricata, but Suricata is not installed (topo/install-suricata.sh)');
    if (analyzer === 'snort' && !(await snortVersion())) throw new Error('--analyzer snort, but Snort 3 is not installed (sudo bash topo/install-snort.sh)');
    const dir = mkdtempSync('/tmp/tcp-migrate-demo-');
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));

    step(3, 'Starting the controller and the topology');
    const config = parseConfig({
      listen: { host: '127.0.0.1', port: 0 },
      log: { level: 'warn' },
      services: [{
        name: 'echo', address: '10.0.0.1', port: 5001, migrateTo: 'server2', verdictTimeoutMs: 2000, mirrorPort: 4,
        backends: [{ name: 'server1', address: '10.0.0.1', port: 5001 }, { name: 'server2', address: '10.0.0.3', port: 5001 }],
      }],
      analyzers: analyzer === 'builtin'
        ? { builtin: { rules: [RULES], vars: { HOME_NET: '10.0.0.0/8' } } }
        : analyzer === 'snort' ? { snort: { logDir: dir } } : { suricata: { socket: join(dir, 'eve.sock') } },
    });
    const controller = new Controller(config, new Logger('warn', 'text'));
    const { port } = await controller.start();
    cleanups.push(() => controller.stop());
    const analyzerText = { builtin: 'built-in matcher', suricata: 'Suricata on the mirror port', snort: 'Snort 3 on the mirror port' }[analyzer];
    say(`  controller on 127.0.0.1:${port}, analyzer: ${analyzerText} (snort-rules/migrate.rules)`);

    const net = TestNet.create();
    cleanups.push(() => net.destroy());
    const hosts: Record<string, Host> = {};
    for (const [name, cidr] of [['server1', '10.0.0.1/24'], ['client', '10.0.0.2/24'], ['server2', '10.0.0.3/24'], ['ids', '10.0.0.9/24']] as const) {
      hosts[name] = await net.addHost(name, cidr);
    }
    const bridge = 'tmtdemo';
    const ready = once(controller, 'switch_ready');
    await ovs.addBridge(bridge, { controller: `tcp:127.0.0.1:${port}` });
    let ofport = 1;
    for (const h of Object.values(hosts)) await ovs.addPort(bridge, h.peer, ofport++);
    await ready;
    for (const name of ['server1', 'server2']) hosts[name].spawn(['node', join(APPS, 'echo-server.mjs'), '--name', name, '--port', '5001']);
    for (const name of ['server1', 'server2']) {
      await waitFor(async () => (await hosts[name].exec(['ss', '-Hltn', 'sport = :5001'])).stdout.includes('5001'), `echo server on ${name}`);
    }
    if (analyzer === 'suricata') {
      say('  starting Suricata on the IDS host …');
      const ids = await startLiveSuricata(hosts.ids, dir, { rules: [RULES, NO_MATCH_RULES], eveSocket: join(dir, 'eve.sock') });
      cleanups.push(() => ids.stop());
    }
    if (analyzer === 'snort') {
      say('  starting Snort 3 on the IDS host (rules exported from snort-rules/migrate.rules) …');
      const rules = await exportSnort3Rules([RULES, NO_MATCH_RULES], join(dir, 'migrate.snort3.rules'));
      const ids = await startLiveSnort(hosts.ids, { logDir: dir, rules });
      cleanups.push(() => ids.stop());
    }
    say('  client 10.0.0.2 → service 10.0.0.1:5001 (server1); server2 10.0.0.3; IDS on switch port 4');

    const engine = controller.engine;
    const story = (line: string) => say(`  ${line}`);
    engine.on('verdict', (c, req) => story(`  · verdict for connection ${c.id}: ${req.verdict}${req.sid ? ` (rule sid ${req.sid})` : ''} from ${req.source}`));
    engine.on('migrated', (c, info) => story(`  · connection ${c.id} handed from ${info.from} to ${info.to} in ${info.latencyMs} ms`));

    step(4, 'A client that says hello: no rule matches, it stays on server 1');
    const c1 = new ScriptClient(hosts.client.spawn(['node', join(APPS, 'client.mjs'), '--script', '--timeout', '30000'], { stdin: 'pipe' }));
    cleanups.push(() => c1.end());
    await expectOk(c1, { op: 'connect', host: '10.0.0.1', port: 5001 });
    story(`client → "hello"   ← ${(await expectOk(c1, { op: 'send', line: 'hello' })).reply}`);
    await expectOk(c1, { op: 'close' });

    step(5, 'A client that asks to be migrated: server 2 answers on server 1\'s address');
    const c2 = new ScriptClient(hosts.client.spawn(['node', join(APPS, 'client.mjs'), '--script', '--timeout', '60000'], { stdin: 'pipe' }));
    cleanups.push(() => c2.end());
    const conn = await expectOk(c2, { op: 'connect', host: '10.0.0.1', port: 5001 });
    story(`client ${conn.local} connected to 10.0.0.1:5001`);
    const migrated = once(engine, 'migrated');
    story(`client → "please migrate this connection"   ← ${(await expectOk(c2, { op: 'send', line: 'please migrate this connection' })).reply}`);
    const [view, info] = await migrated;
    story(`client → "are you still there?"   ← ${(await expectOk(c2, { op: 'send', line: 'are you still there?' })).reply}`);
    say(`\n  flows for connection ${view.id}, as ovs-ofctl shows them:`);
    const flows = (await ovs.ofctl('-O', 'OpenFlow13', '--no-stats', 'dump-flows', bridge)).split('\n')
      .filter((l) => new RegExp(`cookie=0x10[0-9a-f]{2}0*${view.id.toString(16)},`).test(l));
    for (const f of flows) say(`    ${f.trim()}`);

    step(6, `A ${MB} MB file over the migrated connection`);
    const bytes = MB << 20;
    const t0 = Date.now();
    const got = await expectOk(c2, { op: 'blob', n: bytes, seed: 7 });
    const secs = (Date.now() - t0) / 1000;
    const wantSha = sha(7, bytes);
    const intact = got.sha256 === wantSha;
    story(`received ${MB} MB from server2 in ${secs.toFixed(2)} s (${((bytes * 8) / secs / 1e6).toFixed(0)} Mbit/s), sha256 ${got.sha256.slice(0, 16)}…`);
    await expectOk(c2, { op: 'close' });

    say(`\n${bold('Summary')}`);
    say(`  switch: ${patched ? 'patched OVS, datapath fast path' : 'stock OVS, controller relay'}; analyzer: ${analyzer}`);
    say(`  handoff latency (verdict → flows installed, held segment released): ${info.latencyMs} ms`);
    say(`  ${intact ? 'VERDICT: the file arrived intact (sha256 matches)' : 'VERDICT: the file was CORRUPTED (sha256 mismatch)'}`);
    await cleanup();
    process.exit(intact ? 0 : 1);
  } catch (e) {
    console.error(`\ndemo failed: ${(e as Error).message}`);
    await cleanup();
    process.exit(1);
  }
}

async function expectOk(c: ScriptClient, cmd: Record<string, unknown>): Promise<Record<string, any>> {
  const r = await c.cmd(cmd);
  if (!r.ok) throw new Error(`client ${String(cmd.op)} failed: ${r.error}`);
  return r;
}

function sha(seed: number, n: number): string {
  const h = createHash('sha256');
  for (let off = 0; off < n; off += 1 << 20) h.update(blobChunk(seed, off, Math.min(1 << 20, n - off)));
  return h.digest('hex');
}

/** Runs a setup command, passing its progress lines through. */
function runVisible(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    p.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}`))));
  });
}

if (!existsSync(APPS)) throw new Error('run from the repository');
await main();
