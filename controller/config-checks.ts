// The error config validation throws (it names the offending key, and the file) and the checks
// every config section shares.
export class ConfigError extends Error {
  constructor(readonly key: string, detail: string, readonly file?: string) {
    super(`${file ? file + ': ' : ''}invalid config at '${key}': ${detail}`);
  }
}

export type Obj = Record<string, unknown>;

export function checkObject(v: unknown, key: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(key, `expected an object, got ${JSON.stringify(v)}`);
  return v as Obj;
}

/** Unknown keys are errors: a misspelt key must not silently fall back to a default. */
export function checkOnly(o: Obj, key: string, known: readonly string[]): void {
  for (const k of Object.keys(o)) if (!known.includes(k)) throw new ConfigError(key ? `${key}.${k}` : k, `unknown key (known: ${known.join(', ')})`);
}

export function checkInt(v: unknown, key: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new ConfigError(key, `expected an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
  return v;
}

export function checkOneOf<T extends string>(v: unknown, key: string, values: readonly T[]): T {
  if (typeof v !== 'string' || !values.includes(v as T)) throw new ConfigError(key, `expected one of ${values.join(', ')}, got ${JSON.stringify(v)}`);
  return v as T;
}

export function checkBool(v: unknown, key: string): boolean {
  if (typeof v !== 'boolean') throw new ConfigError(key, `expected true or false, got ${JSON.stringify(v)}`);
  return v;
}

export function checkString(v: unknown, key: string, re: RegExp, what: string): string {
  if (typeof v !== 'string' || !re.test(v)) throw new ConfigError(key, `expected ${what}, got ${JSON.stringify(v)}`);
  return v;
}
