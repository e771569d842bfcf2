// The OVS 3.5 patch series (ovs-patch/patches/3.5, Debian 13's Open vSwitch) passes the same
// transparency checks as the default build: ovs-patch/build.sh --base 3.5 installs it under
// /usr/local/ovs-3.5, and ovs-patch/with-prefix.sh runs ovs-patch-transparency.test.ts with those
// programs bind-mounted over /usr/local's, in a private mount namespace (other runs keep using
// /usr/local's OVS). From 3.2 on, checksum offload is on by default in the userspace datapath,
// so the 3.5 build takes different checksum paths than 3.1 with the same veths.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { supportsSeqActions } from '../lib/ovs.ts';

const PREFIX_35 = process.env.TMT_OVS35_PREFIX ?? '/usr/local/ovs-3.5';
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('patched OVS 3.5 (ovs-patch/patches/3.5): transparency', function () {
  this.timeout(15 * 60_000);

  before(async function () {
    if (!(await supportsSeqActions(PREFIX_35))) {
      const why = `no patched OVS 3.5 under ${PREFIX_35}: run ovs-patch/build.sh --base 3.5`;
      if (process.env.CI) throw new Error(why);
      this.skip();
    }
  });

  it('runs ovs-patch-transparency.test.ts against the 3.5 build, all passing', async function () {
    const child = spawn(join(root, 'ovs-patch', 'with-prefix.sh'),
      [PREFIX_35, process.execPath, join(root, 'test', 'run.mjs'), 'test/integration/ovs-patch-transparency.test.ts'],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    const version = /with-prefix: .*?(ovs-vswitchd \(Open vSwitch\) [0-9.]+)/.exec(out)?.[1];
    assert.ok(version?.includes('3.5.'), `expected OVS 3.5 programs, got: ${version ?? out.slice(-2000)}`);
    const summary = [...out.matchAll(/^(\d+) passed, (\d+) failed, (\d+) skipped/gm)].at(-1);
    assert.ok(summary, `no summary line from the transparency run:\n${out.slice(-4000)}`);
    assert.equal(code, 0, `transparency run against 3.5 failed:\n${out.slice(-4000)}`);
    assert.equal(summary[2], '0', out.slice(-4000));
    assert.equal(summary[3], '0', `checks were skipped:\n${out.slice(-4000)}`);
    assert.ok(Number(summary[1]) > 0, out.slice(-4000));
  });
});
