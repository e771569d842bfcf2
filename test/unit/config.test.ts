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
    assert.deepEqual(c.services, []);
  });

  const bad: [unknown, string][] = [
    [{ lisen: {} }, "'lisen': unknown key"],
    [{ listen: { port: 70000 } }, "'listen.port'"],
    [{ log: { level: 'loud' } }, "'log.level'"],
    [{ switch: { echoIntervalMs: 5000, deadTimeoutMs: 4000 } }, "'switch.deadTimeoutMs'"],
    [{ api: { token: 'a b' } }, "'api.token'"],
    [{ analyzers: { builtin: { rules: [] } } }, "'analyzers.builtin.rules'"],
    [{ analyzers: { snort: { mode: '999' } } }, "'analyzers.snort.mode'"],
    [{ services: [{ name: 'x' }] }, "'services[0].backends'"],
    [[], "'(root)'"],
  ];
  for (const [input, key] of bad) {
    it(`names the bad key ${key}`, () => assert.throws(() => parseConfig(input), (e: Error) => e.message.includes(key)));
  }

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
