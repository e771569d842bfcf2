// `tcp-migrate` command line: starts the controller from a validated config file.
import { Command, Option, InvalidArgumentError } from 'commander';
import { Controller } from './controller.ts';
import { ConfigError, DEFAULT_CONFIG, loadConfigFile, parseConfig, type ControllerConfig } from './config.ts';
import { LOG_LEVELS, Logger, type LogLevel } from './log.ts';

function parsePort(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port number 0-65535');
  return n;
}

function loadConfig(path: string | undefined, overrides: { listen?: string; port?: number; logLevel?: LogLevel; logFormat?: 'json' | 'text' }): ControllerConfig {
  const cfg = path ? loadConfigFile(path) : parseConfig({});
  const next = structuredClone(cfg);
  if (overrides.listen) next.listen.host = overrides.listen;
  if (overrides.port !== undefined) next.listen.port = overrides.port;
  if (overrides.logLevel) next.log.level = overrides.logLevel;
  if (overrides.logFormat) next.log.format = overrides.logFormat;
  return parseConfig(next);
}

const program = new Command('tcp-migrate')
  .description('OpenFlow 1.3 controller that hands live TCP connections from one server to another')
  .showHelpAfterError();

program.command('controller')
  .description('run the controller')
  .option('-c, --config <file>', 'JSON config file (see docs/configuration.md)')
  .option('--listen <host>', `address to listen on for switches (default ${DEFAULT_CONFIG.listen.host}; '::' for IPv6)`)
  .option('-p, --port <port>', `OpenFlow port (default ${DEFAULT_CONFIG.listen.port})`, parsePort)
  .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS as string[]))
  .addOption(new Option('--log-format <format>', 'log format').choices(['json', 'text']))
  .action(async (opts) => {
    const cfg = loadConfig(opts.config, opts);
    const log = new Logger(cfg.log.level, cfg.log.format);
    const controller = new Controller(cfg, log);
    await controller.start();
    const shutdown = (sig: string) => {
      log.info('shutting down', { signal: sig });
      controller.stop().then(() => process.exit(0), () => process.exit(1));
    };
    process.once('SIGINT', () => shutdown('SIGINT'));
    process.once('SIGTERM', () => shutdown('SIGTERM'));
  });

program.command('check-config')
  .description('validate a config file and print it with defaults filled in')
  .argument('<file>', 'JSON config file')
  .action((file: string) => {
    console.log(JSON.stringify(loadConfigFile(file), null, 2));
  });

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof ConfigError) {
    console.error(`tcp-migrate: ${e.message}`);
    process.exit(2);
  }
  console.error(`tcp-migrate: ${(e as Error).message}`);
  process.exit(1);
}
