// `tcp-migrate rules …`: check rule files with the built-in matcher's parser, and export them for
// another engine (one rule source, every engine: see rules-export.ts).
// Exit codes as the rest of the CLI: 0 ok, 1 a --check found the output out of date, 2 invalid rules or usage.
import { readFile, rename, writeFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { formatRuleError, loadRuleFiles } from './rules.ts';
import { exportRuleFiles, RULE_DIALECTS, type RuleDialect } from './rules-export.ts';

const FAILED = 1;
const INVALID = 2;

function collectVar(v: string, acc: Record<string, string>): Record<string, string> {
  const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(v);
  if (!m) throw new Error(`--var expects NAME=VALUE, got "${v}"`);
  return { ...acc, [m[1]!]: m[2]! };
}

export function registerRulesCommands(program: Command): void {
  const rules = program.command('rules').description('check rule files, or export them for Snort 3 / Suricata');

  rules.command('check')
    .description('parse rule files as the built-in matcher does; print every error as file:line: option')
    .argument('<files...>', 'rule files (Snort 2.9/Suricata or Snort 3 content syntax)')
    .option('--var <NAME=VALUE>', 'an address/port variable, e.g. HOME_NET=10.0.0.0/8 (repeatable)', collectVar, {})
    .action(async (files: string[], o: { var: Record<string, string> }) => {
      const r = await loadRuleFiles(files, o.var);
      for (const w of r.warnings) console.error(`warning: ${formatRuleError(w)}`);
      for (const e of r.errors) console.error(formatRuleError(e));
      if (r.errors.length) {
        console.error(`${r.errors.length} error(s); ${r.rules.length} valid rule(s)`);
        process.exitCode = INVALID;
        return;
      }
      console.log(`${r.rules.length} rule(s) OK${r.warnings.length ? `, ${r.warnings.length} warning(s)` : ''}`);
    });

  rules.command('export')
    .description('convert rule files for an engine: snort3 (content:"x",nocase;) or suricata (Snort 2.9/Suricata 7: content:"x"; nocase;)')
    .argument('<files...>', 'source rule files')
    .addOption(new Option('--for <engine>', 'target engine').choices([...RULE_DIALECTS]).makeOptionMandatory())
    .option('-o, --output <file>', 'write here (atomically) instead of standard output')
    .option('--check', 'with -o: write nothing, exit 1 if the file differs from what export would write')
    .action(async (files: string[], o: { for: RuleDialect; output?: string; check?: boolean }) => {
      if (o.check && !o.output) { console.error('tcp-migrate: rules export --check needs -o <file>'); process.exitCode = INVALID; return; }
      const r = await exportRuleFiles(files, o.for);
      if (r.errors.length) {
        for (const e of r.errors) console.error(formatRuleError(e));
        console.error(`${r.errors.length} rule(s) cannot be exported for ${o.for}; nothing written`);
        process.exitCode = INVALID;
        return;
      }
      if (!o.output) { process.stdout.write(r.text); return; }
      if (o.check) {
        const now = await readFile(o.output, 'utf8').catch(() => undefined);
        if (now === r.text) { console.log(`${o.output} is up to date (${r.rules} rules)`); return; }
        console.error(`${o.output} is out of date: tcp-migrate rules export --for ${o.for} -o ${o.output} ${files.join(' ')}`);
        process.exitCode = FAILED;
        return;
      }
      const tmp = `${o.output}.tmp-${process.pid}`;
      await writeFile(tmp, r.text);
      await rename(tmp, o.output);
      console.error(`wrote ${r.rules} rule(s) for ${o.for} to ${o.output}`);
    });
}
