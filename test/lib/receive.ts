// A plain TCP receiver in a host: what arrived, as its sha256, for transfers across a test network.
import { once } from 'node:events';
import type { ChildProcess } from 'node:child_process';
import type { Host } from './netns.ts';
import { waitFor } from './exec.ts';

/** Runs `nc -l port | sha256sum` in `host`, then `send()`; resolves with the digest received. */
export async function receive(host: Host, port: number, send: () => Promise<unknown>): Promise<string> {
  const server: ChildProcess = host.spawn(['sh', '-c', `nc -l ${port} | sha256sum`]);
  let out = '';
  server.stdout!.on('data', (d) => (out += d));
  const exited = once(server, 'exit');
  await waitFor(async () => (await host.exec(['ss', '-Hltn', `sport = :${port}`])).stdout.includes(String(port)), `listener on ${port}`);
  await send();
  await Promise.race([exited, new Promise((_, reject) => setTimeout(() => reject(new Error('receiver did not finish')), 20000))]);
  return out.split(/\s/)[0]!;
}
