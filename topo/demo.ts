// `npm run demo`: the whole migration story on this machine, from nothing installed to a verified
// transfer from a migrated connection. Run as root. Ctrl-C (or the end) removes everything it made.
//
//   npm run demo [-- --no-install] [-- --analyzer builtin|suricata|snort] [-- --mb 64] [-- --ipv6] [-- --fabric]
// (topo/demo.sh installs what is missing, npm packages included, then runs this with --installed)
// --ipv6: dual-stack hosts and service, the client on the service's IPv6 address.
// --fabric: three switches in a triangle (the client on one, server 1 on another, server 2 and the
// IDS on the third), the controller with "fabric": true.
// --quic: a QUIC service instead (aioquic peers from topo/quic-root.sh): steered by the SNI of the
// client's Initial, then followed by its connection IDs when the client changes port and address.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { Ovs, PATCHED_PREFIX, STOCK_PREFIX, supportsSeqActions } from './lib/ovs.ts';
import { TestNet, type Host } from './lib/netns.ts';
import { run, waitFor } from './lib/exec.ts';
import { ScriptClient } from './lib/script-client.ts';
import { linkBridges } from './lib/links.ts';
import { QUIC_ROOT_SCRIPT, RootProcess, type ClientSummary } from './lib/quic-peers.ts';
import type { QuicConnView } from '../controller/quic-steer/quic-steer-app.ts';
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
const IPV6 = flag('ipv6');
const FABRIC = flag('fabric');
const QUIC = flag('quic');
/** The dual-stack hosts' IPv6 address: fd00:: and the last byte of the IPv4 one. */
const v6Of = (ip: string) => `fd00::${ip.split('.')[3]}`;
/** An address as the client uses it, in the demo's family. */
const addr = (ip: string) => (IPV6 ? v6Of(ip) : ip);
const HOME_NET = '[10.0.0.0/8,fd00::/8]';
/** --fabric: where each host sits (switch index, port), the triangle's links, and the IDS's switch. */
const FABRIC_HOSTS: Record<string, [number, number]> = { client: [0, 1], server1: [1, 1], server2: [2, 1], ids: [2, 2] };
const FABRIC_LINKS: [number, number, number, number][] = [[0, 10, 1, 11], [1, 12, 2, 13], [2, 14, 0, 15]];
const FABRIC_DPIDS = ['00000000000000a1', '00000000000000a2', '00000000000000a3'];

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
    if (QUIC) {
      const ok = await quicStory(ovs, dir, cleanups);
      await cleanup();
      process.exit(ok ? 0 : 1);
    }

    step(3, 'Starting the controller and the topology');
    const dual = (ip: string) => ({ address: ip, ...(IPV6 && { address6: v6Of(ip) }) });
    const config = parseConfig({
      listen: { host: '127.0.0.1', port: 0 },
      log: { level: 'warn' },
      ...(FABRIC && { fabric: true }),
      services: [{
        name: 'echo', ...dual('10.0.0.1'), port: 5001, migrateTo: 'server2', verdictTimeoutMs: 2000,
        // The IDS: port 4 of the one switch, or port 2 of the third switch of the fabric.
        ...(FABRIC ? { mirrorPort: FABRIC_HOSTS.ids![1], mirrorSwitch: FABRIC_DPIDS[FABRIC_HOSTS.ids![0]] } : { mirrorPort: 4 }),
        backends: [{ name: 'server1', ...dual('10.0.0.1'), port: 5001 }, { name: 'server2', ...dual('10.0.0.3'), port: 5001 }],
      }],
      analyzers: analyzer === 'builtin'
        ? { builtin: { rules: [RULES], vars: { HOME_NET } } }
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
      hosts[name] = await net.addHost(name, cidr, IPV6 && name !== 'ids' ? { ipv6: `${v6Of(cidr.split('/')[0]!)}/64` } : {});
    }
    // The client's switch first: its flows are the ones shown below.
    const bridges = FABRIC ? ['tmtdemo', 'tmtdemob', 'tmtdemoc'] : ['tmtdemo'];
    const bridge = bridges[0]!;
    const ready = new Set<string>();
    controller.on('switch_ready', (sw) => ready.add(sw.describe()));
    for (const [i, br] of bridges.entries()) await ovs.addBridge(br, { controller: `tcp:127.0.0.1:${port}`, ...(FABRIC && { datapathId: FABRIC_DPIDS[i] }) });
    let ofport = 1;
    for (const [name, h] of Object.entries(hosts)) {
      const [sw, p] = FABRIC ? FABRIC_HOSTS[name]! : [0, ofport++];
      await ovs.addPort(bridges[sw]!, h.peer, p);
    }
    if (FABRIC) {
      for (const [i, pi, j, pj] of FABRIC_LINKS) {
        const end = await linkBridges(ovs, `${net.id}-l${pi}`, bridges[i]!, pi, bridges[j]!, pj);
        cleanups.push(() => run('ip', ['link', 'del', end], { allowFail: true }).then(() => undefined));
      }
    }
    await waitFor(() => ready.size === bridges.length, `${bridges.length} switch(es) connected`, 20000);
    if (FABRIC) await waitFor(() => (controller.fabric?.topology.activeLinks().length ?? 0) === FABRIC_LINKS.length, 'the fabric\'s links found by LLDP', 15000);
    for (const name of ['server1', 'server2']) hosts[name].spawn(['node', join(APPS, 'echo-server.mjs'), '--name', name, '--port', '5001', ...(IPV6 ? ['--host', '::'] : [])]);
    for (const name of ['server1', 'server2']) {
      await waitFor(async () => (await hosts[name].exec(['ss', '-Hltn', 'sport = :5001'])).stdout.includes('5001'), `echo server on ${name}`);
    }
    if (analyzer === 'suricata') {
      say('  starting Suricata on the IDS host …');
      const ids = await startLiveSuricata(hosts.ids, dir, { rules: [RULES, NO_MATCH_RULES], eveSocket: join(dir, 'eve.sock'), homeNet: HOME_NET });
      cleanups.push(() => ids.stop());
    }
    if (analyzer === 'snort') {
      say('  starting Snort 3 on the IDS host (rules exported from snort-rules/migrate.rules) …');
      const rules = await exportSnort3Rules([RULES, NO_MATCH_RULES], join(dir, 'migrate.snort3.rules'));
      const ids = await startLiveSnort(hosts.ids, { logDir: dir, rules });
      cleanups.push(() => ids.stop());
    }
    const svc = IPV6 ? '[fd00::1]:5001' : '10.0.0.1:5001';
    say(`  client ${addr('10.0.0.2')} → service ${svc} (server1); server2 ${addr('10.0.0.3')}; ${FABRIC
      ? 'three switches in a triangle (LLDP): the client on the first, server1 on the second, server2 and the IDS on the third'
      : 'IDS on switch port 4'}`);

    const engine = controller.engine;
    const story = (line: string) => say(`  ${line}`);
    engine.on('verdict', (c, req) => story(`  · verdict for connection ${c.id}: ${req.verdict}${req.sid ? ` (rule sid ${req.sid})` : ''} from ${req.source}`));
    engine.on('migrated', (c, info) => story(`  · connection ${c.id} handed from ${info.from} to ${info.to} in ${info.latencyMs} ms`));

    step(4, 'A client that says hello: no rule matches, it stays on server 1');
    const c1 = new ScriptClient(hosts.client.spawn(['node', join(APPS, 'client.mjs'), '--script', '--timeout', '30000'], { stdin: 'pipe' }));
    cleanups.push(() => c1.end());
    await expectOk(c1, { op: 'connect', host: addr('10.0.0.1'), port: 5001 });
    story(`client → "hello"   ← ${(await expectOk(c1, { op: 'send', line: 'hello' })).reply}`);
    await expectOk(c1, { op: 'close' });

    step(5, 'A client that asks to be migrated: server 2 answers on server 1\'s address');
    const c2 = new ScriptClient(hosts.client.spawn(['node', join(APPS, 'client.mjs'), '--script', '--timeout', '60000'], { stdin: 'pipe' }));
    cleanups.push(() => c2.end());
    const conn = await expectOk(c2, { op: 'connect', host: addr('10.0.0.1'), port: 5001 });
    story(`client ${conn.local} connected to ${svc}`);
    const migrated = once(engine, 'migrated');
    story(`client → "please migrate this connection"   ← ${(await expectOk(c2, { op: 'send', line: 'please migrate this connection' })).reply}`);
    const [view, info] = await migrated;
    story(`client → "are you still there?"   ← ${(await expectOk(c2, { op: 'send', line: 'are you still there?' })).reply}`);
    if (view.conntrack) {
      // Kept in the switch's conntrack (the default): no flows of its own until it has lived
      // handoff.conntrackFlowsAfterMs; its entry holds the NAT, the ack delta and the MACs.
      const clientPort = conn.local.split(':').at(-1);
      say(`\n  connection ${view.id} is kept in the switch's conntrack (flows of its own after ${config.handoff.conntrackFlowsAfterMs} ms), as ovs-appctl shows it:`);
      const entries = (await ovs.appctl('dpctl/dump-conntrack', `zone=${config.handoff.conntrackZone}`)).split('\n').filter((l) => l.includes(`sport=${clientPort},`));
      for (const e of entries) say(`    ${e.trim()}`);
      await new Promise((r) => setTimeout(r, config.handoff.conntrackFlowsAfterMs + 500));
    }
    say(`\n  flows for connection ${view.id}, as ovs-ofctl shows them:`);
    const flows = (await ovs.ofctl('-O', 'OpenFlow13', '--no-stats', 'dump-flows', bridge)).split('\n')
      .filter((l) => new RegExp(`cookie=0x10[0-9a-f]{2}0*${view.id.toString(16)},`).test(l));
    for (const f of flows) say(`    ${f.trim()}`);
    if (FABRIC) {
      say(`  the switches on its paths only pass it on (transit flows, cookie 0x1004…):`);
      for (const br of bridges.slice(1)) {
        const transit = (await ovs.ofctl('-O', 'OpenFlow13', '--no-stats', 'dump-flows', br)).split('\n')
          .filter((l) => new RegExp(`cookie=0x1004${view.id.toString(16).padStart(12, '0')},`).test(l));
        for (const f of transit) say(`    ${br}: ${f.trim()}`);
      }
    }

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
    say(`  switch: ${patched ? 'patched OVS, datapath fast path' : 'stock OVS, controller relay'}${FABRIC ? ', a fabric of three' : ''}; analyzer: ${analyzer}; ${IPV6 ? 'IPv6' : 'IPv4'}`);
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

/**
 * --quic: a QUIC service on server 1's address (UDP 443), the built-in matcher's QUIC rules on the
 * client's Initial (SNI move.example → MIGRATE to server 2), aioquic on both servers and the
 * client; then a download during which the client changes its port and its address. Steps 3–6.
 */
async function quicStory(ovs: Ovs, dir: string, cleanups: (() => Promise<void> | void)[]): Promise<boolean> {
  const PORT = 443;
  const LB = { length: 12, offset: 1, serverIdLength: 3 };
  const SERVER_IDS = { server1: 'a1a1a1', server2: 'b2b2b2' };
  const rootOk = (await run('bash', [QUIC_ROOT_SCRIPT, 'status'], { allowFail: true })).code === 0;
  if (!rootOk) throw new Error('--quic needs the QUIC peers\' root: sudo bash topo/quic-root.sh build (npm run demo -- --quic builds it)');
  step(3, 'Starting the controller and the topology (a QUIC service)');
  const rules = join(dir, 'quic.rules');
  writeFileSync(rules, 'alert quic any any -> $HOME_NET 443 (msg:"MIGRATE move"; quic.sni; content:"move.example"; nocase; startswith; endswith; sid:1500001; rev:1;)\n');
  const config = parseConfig({
    listen: { host: '127.0.0.1', port: 0 }, log: { level: 'warn' },
    services: [{
      protocol: 'quic', name: 'web', address: '10.0.0.1', port: PORT, migrateTo: 'server2', verdictTimeoutMs: 2000, idleTimeout: 30,
      // QUIC-LB plaintext server IDs: the servers put theirs in every connection ID they issue.
      cid: LB,
      backends: [{ name: 'server1', address: '10.0.0.1', port: PORT, serverId: SERVER_IDS.server1 }, { name: 'server2', address: '10.0.0.3', port: PORT, serverId: SERVER_IDS.server2 }],
    }],
    analyzers: { builtin: { rules: [rules], vars: { HOME_NET: HOME_NET } } },
  });
  const controller = new Controller(config, new Logger('warn', 'text'));
  const { port } = await controller.start();
  cleanups.push(() => controller.stop());
  const net = TestNet.create();
  cleanups.push(() => net.destroy());
  const hosts: Record<string, Host> = {};
  for (const [name, cidr] of [['server1', '10.0.0.1/24'], ['client', '10.0.0.2/24'], ['server2', '10.0.0.3/24']] as const) hosts[name] = await net.addHost(name, cidr);
  const bridge = 'tmtdemo';
  const ready = once(controller, 'switch_ready');
  await ovs.addBridge(bridge, { controller: `tcp:127.0.0.1:${port}` });
  let ofport = 1;
  for (const h of Object.values(hosts)) await ovs.addPort(bridge, h.peer, ofport++);
  await ready;
  for (const [name, ip] of [['server1', '10.0.0.1'], ['server2', '10.0.0.3']] as const) {
    const p = RootProcess.spawn(hosts[name]!, ['/opt/tmt-quic/server.py', '--name', name, '--host', ip, '--port', String(PORT),
      '--cid-server-id', SERVER_IDS[name], '--cid-length', String(LB.length), '--cid-offset', String(LB.offset)], name);
    await p.waitLine((l) => l.listening === PORT, 'its listening line');
  }
  await hosts.client!.exec(['ip', 'addr', 'add', '10.0.0.12/24', 'dev', 'eth0']);
  say(`  controller on 127.0.0.1:${port}; QUIC service web on 10.0.0.1:${PORT} (server1), server2 10.0.0.3; aioquic on both`);
  say('  rule: alert quic … (quic.sni; content:"move.example"; …) → MIGRATE; anything else stays on server 1');
  say(`  the servers' connection IDs carry their QUIC-LB server id (${SERVER_IDS.server1}, ${SERVER_IDS.server2} at byte ${LB.offset}): the switch follows a client by them`);
  const story = (line: string) => say(`  ${line}`);
  controller.quic.on('verdict', (c: { id: number }, req: { verdict: string; source: string; sid?: number }) => story(`  · verdict for QUIC client ${c.id}: ${req.verdict}${req.sid ? ` (rule sid ${req.sid})` : ''} from ${req.source}`));
  controller.quic.on('followed', (c: QuicConnView) => story(`  · the client's datagrams from ${c.client} followed by its connection ID (${c.via === 'learnt' ? 'learnt from the server' : 'QUIC-LB server id'}), still on ${c.backend}`));
  const download = async (sni: string, bytes: number, extra: string[] = []) => {
    const p = RootProcess.spawn(hosts.client!, ['/opt/tmt-quic/client.py', '--server', `10.0.0.1:${PORT}`, '--bytes', String(bytes), '--sni', sni, '--timeout', '60', ...extra], 'client.py');
    const s = await p.waitLine((l) => 'ok' in l, 'its summary', 90000) as unknown as ClientSummary;
    await p.exit();
    if (s.error) throw new Error(`client.py (${sni}): ${s.error} ${p.stderr.trim()}`);
    return s;
  };

  step(4, 'A client asking for stay.example: no rule matches, server 1 answers');
  const a = await download('stay.example', 1 << 20);
  story(`client → 10.0.0.1:${PORT} (SNI stay.example)   ← ${a.server}, 1 MB, sha256 ${a.sha256 === a.expected_sha256 ? 'ok' : 'WRONG'}`);

  step(5, 'A client asking for move.example: server 2 answers on server 1\'s address');
  const b = await download('move.example', 1 << 20);
  story(`client → 10.0.0.1:${PORT} (SNI move.example)   ← ${b.server}, 1 MB, sha256 ${b.sha256 === b.expected_sha256 ? 'ok' : 'WRONG'}`);

  // aioquic in Python moves some tens of MB/s: 16 MB unless --mb says otherwise.
  const mb = argv.includes('--mb') ? MB : 16;
  const bytes = mb << 20;
  step(6, `${mb} MB from move.example while the client changes its port, then its address`);
  const c = await download('move.example', bytes, ['--rebind-after', String(Math.floor(bytes / 3)), '--migrate-after', String(Math.floor((2 * bytes) / 3)), '--new-address', '10.0.0.12']);
  const intact = c.sha256 === c.expected_sha256 && c.server === b.server;
  story(`the client used ${c.addresses.join(' → ')}; served by ${c.server} throughout; sha256 ${c.sha256 === c.expected_sha256 ? 'matches' : 'MISMATCH'}`);
  say(`\n${bold('Summary')}`);
  say(`  ${intact ? 'VERDICT: the connection stayed on server 2 across a new port and a new address, the file intact' : 'VERDICT: the connection did NOT stay on server 2 intact'}`);
  return intact;
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
