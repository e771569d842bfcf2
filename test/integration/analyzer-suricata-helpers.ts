// Runs a real Suricata offline for the analyzer integration tests (not a test file itself).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../lib/exec.ts';

/** Suricata's version, or null when it is not installed. */
export async function suricataVersion(): Promise<string | null> {
  try {
    const r = await run('suricata', ['-V'], { allowFail: true, timeoutMs: 10000 });
    const m = /version (\d[\w.-]*)/.exec(r.stdout + r.stderr);
    return m ? m[1]! : null;
  } catch {
    return null;
  }
}

/** In CI a missing Suricata is a failure with the fix named; locally the suite is pending. */
export async function requireSuricata(ctx: Mocha.Context): Promise<string> {
  const v = await suricataVersion();
  if (v) return v;
  const msg = 'Suricata is not installed: run `bash topo/install-suricata.sh` (bookworm-backports, Suricata 7)';
  if (process.env.CI) throw new Error(msg);
  console.log(`      (pending: ${msg})`);
  ctx.skip();
  return '';
}

export interface SuricataRun {
  dir: string;
  pcap: string;
  ruleFiles: string[];
  eve: { filetype: 'unix_dgram' | 'unix_stream' | 'regular'; filename: string };
  homeNet?: string;
  /** `suricata -T`: only load the config and rules (pcap unused), and resolve even when that fails. */
  test?: boolean;
}

/** Writes a config like docs/analyzers.md's and runs `suricata -r` (or `-T`) to completion. */
export async function runSuricataOffline(o: SuricataRun): Promise<{ stdout: string; stderr: string; code: number; config: string }> {
  const config = join(o.dir, 'suricata.yaml');
  const logDir = join(o.dir, 'log');
  const yaml = `%YAML 1.1
---
vars:
  address-groups:
    HOME_NET: "${o.homeNet ?? '[10.0.0.0/8]'}"
    EXTERNAL_NET: "any"
  port-groups:
    HTTP_PORTS: "80"
default-log-dir: ${logDir}
default-rule-path: ${o.dir}
rule-files:
${o.ruleFiles.map((f) => `  - ${f}`).join('\n')}
classification-file: /etc/suricata/classification.config
reference-config-file: /etc/suricata/reference.config
outputs:
  - eve-log:
      enabled: yes
      filetype: ${o.eve.filetype}
      filename: ${o.eve.filename}
      types:
        - alert:
            payload: yes
            payload-printable: yes
            packet: yes
            metadata: yes
  - stats:
      enabled: no
`;
  writeFileSync(config, yaml);
  await run('mkdir', ['-p', logDir]);
  if (o.test) return { ...(await run('suricata', ['-T', '-c', config, '-l', logDir], { timeoutMs: 60000, allowFail: true })), config };
  // -k none: our frames have valid checksums, but offline captures often do not.
  const r = await run('suricata', ['-c', config, '-r', o.pcap, '-l', logDir, '-k', 'none', '--runmode', 'single'], { timeoutMs: 60000 });
  return { ...r, config };
}
