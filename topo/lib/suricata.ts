// Suricata live on an IDS host's interface, alerts as EVE JSON to a unix datagram socket the
// controller has bound: the config, and a start that waits for Suricata's own "running" line.
import { copyFileSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { ChildProcess } from 'node:child_process';
import type { Host } from './netns.ts';

export interface LiveSuricata { proc: ChildProcess; stop(): Promise<void> }

export interface LiveSuricataOptions {
  /** Rule file(s), copied into dir: snort-rules/migrate.rules, and snort-rules/no-match.rules for the no-match marker. */
  rules: string | string[];
  eveSocket: string;
  iface?: string;
  homeNet?: string;
  /** EVE `stats` records every N seconds: the heartbeat analyzer health watches (docs/analyzers.md). */
  heartbeatSec?: number;
}

export function writeLiveConfig(dir: string, o: LiveSuricataOptions): string {
  const rules = (Array.isArray(o.rules) ? o.rules : [o.rules]).map((r) => {
    const name = basename(r);
    copyFileSync(r, join(dir, name));
    return name;
  });
  const path = join(dir, 'suricata.yaml');
  writeFileSync(path, `%YAML 1.1
---
vars:
  address-groups:
    HOME_NET: "${o.homeNet ?? '[10.0.0.0/8]'}"
    EXTERNAL_NET: "any"
default-log-dir: ${dir}
default-rule-path: ${dir}
rule-files:
${rules.map((r) => `  - ${r}`).join('\n')}
classification-file: /etc/suricata/classification.config
reference-config-file: /etc/suricata/reference.config
outputs:
  - eve-log:
      enabled: yes
      filetype: unix_dgram
      filename: ${o.eveSocket}
      types:
        - alert:
            packet: yes
            payload: yes
${o.heartbeatSec ? `        - stats:
            totals: yes
            threads: no
            deltas: no
` : ''}  - stats:
      enabled: no
${o.heartbeatSec ? `stats:
  enabled: yes
  interval: ${o.heartbeatSec}
` : ''}af-packet:
  - interface: ${o.iface ?? 'eth0'}
    cluster-id: 98
    cluster-type: cluster_flow
    defrag: yes
    use-mmap: yes
    # v2 ring: ~0.2-0.4 ms packet to alert; tpacket-v3's block timeout adds milliseconds.
    tpacket-v3: no
`);
  return path;
}

/** Starts Suricata in `ids`'s namespace; resolves once its capture threads run. */
export async function startLiveSuricata(ids: Host, dir: string, o: LiveSuricataOptions & { timeoutMs?: number }): Promise<LiveSuricata> {
  const config = writeLiveConfig(dir, o);
  const iface = o.iface ?? 'eth0';
  const proc = ids.spawn(['suricata', '-c', config, `--af-packet=${iface}`, '-l', dir, '-k', 'none', '-v']);
  const stop = async () => { if (proc.exitCode === null && proc.signalCode === null) { proc.kill('SIGTERM'); await once(proc, 'exit'); } };
  await new Promise<void>((resolve, reject) => {
    const seen: string[] = [];
    const t = setTimeout(() => reject(new Error(`Suricata did not start within ${o.timeoutMs ?? 60000} ms: ${seen.slice(-5).join(' | ')}`)), o.timeoutMs ?? 60000);
    const onLine = (l: string) => {
      seen.push(l);
      if (/threads? (are )?running|engine started/i.test(l)) { clearTimeout(t); resolve(); }
    };
    createInterface({ input: proc.stdout! }).on('line', onLine);
    createInterface({ input: proc.stderr! }).on('line', onLine);
    proc.once('exit', (code) => { clearTimeout(t); reject(new Error(`Suricata exited (${code}): ${seen.slice(-5).join(' | ')}`)); });
  }).catch(async (e) => { await stop(); throw e; });
  return { proc, stop };
}
