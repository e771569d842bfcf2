// The one error type config validation throws: it names the offending key (and file).
export class ConfigError extends Error {
  constructor(readonly key: string, detail: string, readonly file?: string) {
    super(`${file ? file + ': ' : ''}invalid config at '${key}': ${detail}`);
  }
}
