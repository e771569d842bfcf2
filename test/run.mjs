#!/usr/bin/env node
// Runs the mocha suite and ends with the plain "N passed, N failed" line CI reads
// (mocha's own summary is not recognised). Usage: node test/run.mjs [--unit|--integration] [--grep RE] [files...]
import { spawnSync } from 'node:child_process';
import { readdirSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const dirs = [];
const pass = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--unit') dirs.push('test/unit');
  else if (a === '--integration') dirs.push('test/integration');
  else pass.push(a);
}
if (dirs.length === 0 && !pass.some((a) => a.endsWith('.ts'))) dirs.push('test/unit', 'test/integration');
const files = [];
for (const d of dirs) {
  const abs = join(root, d);
  if (!existsSync(abs)) continue;
  for (const f of readdirSync(abs).sort()) if (f.endsWith('.test.ts')) files.push(join(d, f));
}
const mocha = join(root, 'node_modules', 'mocha', 'bin', 'mocha.js');
if (!existsSync(mocha)) {
  console.error('npm test: npm packages are missing. Run `npm ci` first (and, as root, `bash topo/install-deps.sh` for the system parts).');
  process.exit(1);
}
const res = spawnSync(process.execPath, [mocha, '--reporter', join(root, 'test', 'lib', 'summary-reporter.cjs'), ...pass, ...files], {
  cwd: root, stdio: 'inherit', env: process.env,
});
process.exit(res.status ?? 1);
