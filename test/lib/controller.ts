// Runs the real controller in-process for a test, on an ephemeral loopback port.
import { once } from 'node:events';
import { Controller } from '../../controller/controller.ts';
import { parseConfig } from '../../controller/config.ts';
import { Logger } from '../../controller/log.ts';
import type { SwitchConnection } from '../../controller/datapath/switch-connection.ts';
import type { App } from '../../controller/apps/app.ts';

export async function startController(apps: App[] = [], overrides: Record<string, unknown> = {}): Promise<{ controller: Controller; port: number; target: string }> {
  const cfg = parseConfig({ listen: { host: '127.0.0.1', port: 0 }, log: { level: process.env.TM_LOG_LEVEL ?? 'warn' }, ...overrides });
  const controller = new Controller(cfg, new Logger(cfg.log.level, 'text'), apps);
  const { port } = await controller.start();
  return { controller, port, target: `tcp:127.0.0.1:${port}` };
}

/** Resolves with the next switch the controller has fully prepared. */
export async function nextSwitchReady(controller: Controller, timeoutMs = 15000): Promise<SwitchConnection> {
  const [sw] = await once(controller, 'switch_ready', { signal: AbortSignal.timeout(timeoutMs) });
  return sw as SwitchConnection;
}
