#!/usr/bin/env node
// Runs the mocha suite and ends with the plain "N passed, N failed" line CI reads
// (mocha's own summary is not recognised). Usage: node test/run.mjs [--unit|--integration] [--grep RE] [files...]
//
// Always: --forbid-only (a stray `.only` fails the run) and --fail-zero (so does running nothing);
// a test directory or file that does not exist is a failure, not an empty run.
// With CI set (.ci/run sets CI=1): --forbid-pending, so any skipped test fails the run. Tests of
// real parts (patched OVS, Suricata, Chromium, etcd) also throw with the fix named when CI is set.
import { spawn } from 'node:child_process';
import { readdirSync, existsSync } from 'node:fs';
import { join, dirname, resolve } from 'node:path';
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

/** Ends the run before mocha started: the reason, then the closing line CI reads. */
function fail(why) {
  console.error(`test/run.mjs: ${why}`);
  console.log('0 passed, 1 failed, 0 skipped');
  process.exit(1);
}

const files = [];
for (const d of dirs) {
  const abs = join(root, d);
  if (!existsSync(abs)) fail(`test directory ${d} is missing`);
  const found = readdirSync(abs).sort().filter((f) => f.endsWith('.test.ts'));
  if (found.length === 0) fail(`test directory ${d} has no *.test.ts files`);
  for (const f of found) files.push(join(d, f));
}
for (const f of pass) if (f.endsWith('.ts') && !existsSync(resolve(root, f))) fail(`no such test file: ${f}`);
const mocha = join(root, 'node_modules', 'mocha', 'bin', 'mocha.js');
if (!existsSync(mocha)) fail('npm packages are missing. Run `npm ci` first (and, as root, `bash topo/install-deps.sh` for the system parts).');

// --exit: a handle a test leaks (seen: an alert-socket receiver of the native add-on, whose uv_poll
// then kept the loop alive, or spun in Node's exit-time cleanup) must not hang the run after its
// summary. The leak itself is a bug to find; it is not worth a CI run that never ends.
const strict = ['--forbid-only', '--fail-zero', '--exit', ...(process.env.CI ? ['--forbid-pending'] : [])];
// global.gc for tests that measure memory (test/unit/handoff-memory.test.ts); merged with .mocharc's node-option.
const nodeOptions = ['--node-option', 'expose-gc'];
const child = spawn(process.execPath, [mocha, '--reporter', join(root, 'test', 'lib', 'summary-reporter.cjs'), ...strict, ...nodeOptions, ...pass, ...files], {
  cwd: root, stdio: ['inherit', 'pipe', 'inherit'], env: process.env,
});
// Output passes straight through; the last line is remembered so that a run mocha ends without
// the reporter's summary (a file that fails to load) or with a failure the summary does not count
// (--fail-zero) still ends with a closing line that says it failed.
let tail = '';
child.stdout.on('data', (d) => {
  process.stdout.write(d);
  tail = (tail + d.toString()).split('\n').slice(-2).join('\n');
});
child.on('close', (code, signal) => {
  const status = code ?? 1;
  const last = tail.trim().split('\n').pop() ?? '';
  const m = /^(\d+) passed, (\d+) failed(?:, (\d+) skipped)?$/.exec(last);
  if (status !== 0 && (!m || m[2] === '0')) {
    console.error(`test/run.mjs: mocha exited ${signal ?? status} without counting a failure (no tests ran, or a file failed to load)`);
    console.log(`${m ? m[1] : 0} passed, 1 failed, ${m?.[3] ?? 0} skipped`);
  }
  process.exit(status === 0 && !signal ? 0 : status || 1);
});
