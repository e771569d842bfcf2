import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { parseConfig, loadConfigFile, DEFAULT_CONFIG } from '../../controller/config.ts';

describe('controller config', () => {
  it('fills defaults', () => {
    const c = parseConfig({});
    assert.deepEqual(c.listen, DEFAULT_CONFIG.listen);
    assert.equal(c.handoff.releaseBeforeBarrier, true);
    assert.deepEqual(c.services, []);
  });

  const bad: [unknown, string][] = [
    [{ lisen: {} }, "'lisen': unknown key"],
    [{ listen: { port: 70000 } }, "'listen.port'"],
    [{ log: { level: 'loud' } }, "'log.level'"],
    [{ switch: { echoIntervalMs: 5000, deadTimeoutMs: 4000 } }, "'switch.deadTimeoutMs'"],
    [{ api: { token: 'a b' } }, "'api.token'"],
    [{ handoff: { releaseBeforeBarrier: 'yes' } }, "'handoff.releaseBeforeBarrier'"],
    [{ services: [{ name: 'x', address: '10.0.0.1', port: 80, backends: [{ name: 'a', address: '10.0.0.1', port: 80 }], speculativeReplay: 1 }] }, "'services[0].speculativeReplay'"],
    [{ analyzers: { builtin: { rules: [] } } }, "'analyzers.builtin.rules'"],
    [{ analyzers: { snort: { mode: '999' } } }, "'analyzers.snort.mode'"],
    [{ services: [{ name: 'x' }] }, "'services[0].backends'"],
    [[], "'(root)'"],
  ];
  for (const [input, key] of bad) {
    it(`names the bad key ${key}`, () => assert.throws(() => parseConfig(input), (e: Error) => e.message.includes(key)));
  }

  describe('IPv6 and dual-stack services', () => {
    const b = (name: string, address: string, extra: Record<string, unknown> = {}) => ({ name, address, port: 5001, ...extra });
    const svc = (o: Record<string, unknown>) => ({ services: [{ name: 's', port: 5001, ...o }] });

    it('accepts IPv6 (any spelling, kept in RFC 5952 form) and IPv4 + address6', () => {
      const c = parseConfig(svc({ address: 'FD00:0:0::1', backends: [b('a', 'fd00::1'), b('b', 'fd00:0::3')] }));
      assert.deepEqual([c.services[0]!.address, c.services[0]!.backends.map((x) => x.address)], ['fd00::1', ['fd00::1', 'fd00::3']]);
      const d = parseConfig(svc({ address: '10.0.0.1', address6: 'fd00::1', backends: [b('a', '10.0.0.1', { address6: 'fd00::1' }), b('b', '10.0.0.3', { address6: 'FD00::3' }), b('c', '10.0.0.4')] }));
      assert.deepEqual([d.services[0]!.address6, d.services[0]!.backends.map((x) => x.address6)], ['fd00::1', ['fd00::1', 'fd00::3', undefined]]);
    });

    const refused: [string, unknown, RegExp][] = [
      ['a malformed IPv6 address', svc({ address: 'fd00:::1', backends: [b('a', 'fd00::1')] }), /'services\[0\]\.address': expected an IPv4 or IPv6 address/],
      ['address6 next to an IPv6 address', svc({ address: 'fd00::1', address6: 'fd00::2', backends: [b('a', 'fd00::1')] }), /'services\[0\]\.address6': only with an IPv4 address/],
      ['an IPv4 address6', svc({ address: '10.0.0.1', address6: '10.0.0.2', backends: [b('a', '10.0.0.1')] }), /'services\[0\]\.address6': expected an IPv6 address/],
      ['a primary without the service\'s address6', svc({ address: '10.0.0.1', address6: 'fd00::1', backends: [b('a', '10.0.0.1')] }), /'services\[0\]\.primary': .*address6/],
      ['a backend of no family the service has', svc({ address: 'fd00::1', backends: [b('a', 'fd00::1'), b('b', '10.0.0.3')] }), /'services\[0\]\.backends\[1\]\.address': backend 'b' .* no address of the service's family/],
      ['two services on the same IPv6 address and port', { services: [
        { name: 's', address: '10.0.0.1', address6: 'fd00::1', port: 5001, backends: [b('a', '10.0.0.1', { address6: 'fd00::1' })] },
        { name: 't', address: 'FD00::1', port: 5001, backends: [b('a', 'fd00::1')] },
      ] }, /service address \[fd00::1\]:5001 already used/],
    ];
    for (const [what, input, msg] of refused) it(`refuses ${what}`, () => assert.throws(() => parseConfig(input), msg));
  });

  describe('mirrorSwitch (an IDS port on another fabric switch)', () => {
    const svc = (o: Record<string, unknown>) => ({ services: [{ name: 's', address: '10.0.0.1', port: 5001, backends: [{ name: 'a', address: '10.0.0.1', port: 5001 }], ...o }] });
    it('takes a datapath id in any usual spelling, kept as 16 hex digits', () => {
      for (const v of ['00000000000000a3', '0xA3', 'a3', '00:00:00:00:00:00:00:a3']) assert.equal(parseConfig(svc({ mirrorPort: 5, mirrorSwitch: v })).services[0]!.mirrorSwitch, '00000000000000a3', v);
    });
    it('refuses one without mirrorPort, and what is not a datapath id', () => {
      assert.throws(() => parseConfig(svc({ mirrorSwitch: 'a3' })), /'services\[0\]\.mirrorSwitch': only with mirrorPort/);
      for (const v of ['xyz', '0x11111111111111111', 163]) assert.throws(() => parseConfig(svc({ mirrorPort: 5, mirrorSwitch: v })), /'services\[0\]\.mirrorSwitch': expected a datapath id/, String(v));
    });
  });

  it('reports unreadable and non-JSON files with the file name', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tm-cfg-'));
    try {
      writeFileSync(join(dir, 'c.json'), '{ nope');
      assert.throws(() => loadConfigFile(join(dir, 'c.json')), /c\.json: invalid config at '\(file\)': not valid JSON/);
      assert.throws(() => loadConfigFile(join(dir, 'missing.json')), /missing\.json: .*cannot read/);
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });

  it('the CLI exits 2 and names the key for an invalid file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tm-cfg-'));
    try {
      writeFileSync(join(dir, 'c.json'), JSON.stringify({ listen: { port: 'x' } }));
      const r = spawnSync(process.execPath, ['bin/tcp-migrate.mjs', 'check-config', join(dir, 'c.json')], { encoding: 'utf8' });
      assert.equal(r.status, 2);
      assert.match(r.stderr, /invalid config at 'listen\.port'/);
      const ok = spawnSync(process.execPath, ['bin/tcp-migrate.mjs', 'check-config', 'topo/example-config.json'], { encoding: 'utf8' });
      assert.equal(ok.status, 0, ok.stderr);
      assert.equal(JSON.parse(ok.stdout).services[0].name, 'echo');
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });
});
