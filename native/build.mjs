#!/usr/bin/env node
// Builds native/build/Release/unix_dgram.node with node-gyp, offline: node-gyp would otherwise
// download Node's headers, so point it at the installed ones (Debian: /usr/include/node).
// Usage: node native/build.mjs   (run by `npm run build:native` and the npm install script)
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const candidates = [process.env.npm_config_nodedir, join(dirname(process.execPath), '..'), '/usr', '/usr/local'].filter(Boolean);
const nodedir = candidates.find((d) => existsSync(join(d, 'include', 'node', 'node_api.h')));

// node-gyp: npm puts it on PATH for scripts; otherwise use the copy bundled with npm.
function nodeGyp() {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, 'node-gyp'))) return { cmd: join(dir, 'node-gyp'), pre: [] };
  }
  const npmBin = spawnSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).stdout.trim();
  if (npmBin) {
    const js = join(dirname(realpathSync(npmBin)), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    if (existsSync(js)) return { cmd: process.execPath, pre: [js] };
  }
  return null;
}

const gyp = nodeGyp();
if (!gyp) {
  console.error('native/build.mjs: node-gyp not found (it ships with npm)');
  process.exit(1);
}
const args = [...gyp.pre, 'rebuild', `--directory=${here}`];
if (nodedir) args.push(`--nodedir=${nodedir}`);
else console.error('native/build.mjs: Node headers not found locally; node-gyp will try to download them');
const r = spawnSync(gyp.cmd, args, { stdio: 'inherit' });
process.exit(r.status ?? 1);
