// Validation of `listen.tls`: three PEM files, checked when the config is loaded so a wrong path
// or a key that does not belong to its certificate is a config error, not a listener that fails later.
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { ConfigError, checkObject, checkOnly, checkString } from '../config-checks.ts';
import type { ListenTls } from './openflow-server.ts';

const KEYS = ['cert', 'key', 'ca'] as const;

export function parseListenTls(v: unknown, key: string): ListenTls {
  const o = checkObject(v, key);
  checkOnly(o, key, KEYS);
  const out = {} as ListenTls;
  const pem = {} as Record<(typeof KEYS)[number], Buffer>;
  for (const k of KEYS) {
    if (o[k] === undefined) throw new ConfigError(`${key}.${k}`, `required with ${key} (${k === 'ca' ? 'the CA certificate that signs the switches\' certificates' : `the controller's ${k === 'cert' ? 'certificate' : 'private key'}`}, a PEM file)`);
    out[k] = checkString(o[k], `${key}.${k}`, /\S/, 'a PEM file path');
    try { pem[k] = readFileSync(out[k]); } catch (e) { throw new ConfigError(`${key}.${k}`, `cannot read ${out[k]}: ${(e as Error).message}`); }
  }
  try {
    createSecureContext({ cert: pem.cert, key: pem.key, ca: pem.ca });
  } catch (e) {
    throw new ConfigError(key, `unusable certificate, key or CA (${(e as Error).message})`);
  }
  return out;
}
