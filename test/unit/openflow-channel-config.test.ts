// The `listen` section (issue 11, item 12): loopback by default, and `listen.tls` validated when
// the config is loaded, with errors that name the key and say what is wrong.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_CONFIG, parseConfig, ConfigError } from '../../controller/config.ts';
import { TestPki } from '../lib/pki.ts';

describe('config: listen', function () {
  this.timeout(30000);
  let pki: TestPki;
  before(async () => { pki = await TestPki.create(); });
  after(() => pki?.remove());

  const tls = () => ({ cert: pki.controller.cert, key: pki.controller.key, ca: pki.ca });
  const rejects = (listen: unknown, key: string, detail: RegExp) => assert.throws(
    () => parseConfig({ listen }),
    (e: unknown) => e instanceof ConfigError && e.key === key && detail.test(e.message),
  );

  it('listens on loopback only by default, without TLS', () => {
    assert.equal(DEFAULT_CONFIG.listen.host, '127.0.0.1');
    const c = parseConfig({});
    assert.equal(c.listen.host, '127.0.0.1');
    assert.equal(c.listen.tls, undefined);
  });

  it('accepts a certificate, its key and a CA', () => {
    assert.deepEqual(parseConfig({ listen: { host: '0.0.0.0', tls: tls() } }).listen, { host: '0.0.0.0', port: 6653, tls: tls() });
  });

  it('names a missing, misspelt or unreadable file', () => {
    rejects({ tls: { cert: pki.controller.cert, ca: pki.ca } }, 'listen.tls.key', /required with listen\.tls .*private key/);
    rejects({ tls: { ...tls(), crt: 'x' } }, 'listen.tls.crt', /unknown key \(known: cert, key, ca\)/);
    rejects({ tls: { ...tls(), ca: join(pki.dir, 'nope.pem') } }, 'listen.tls.ca', /cannot read .*nope\.pem: ENOENT/);
    rejects({ tls: { ...tls(), cert: '' } }, 'listen.tls.cert', /expected a PEM file path/);
    rejects({ tls: true }, 'listen.tls', /expected an object/);
  });

  it('refuses a key that does not belong to the certificate, or a file that is not PEM', () => {
    rejects({ tls: { ...tls(), key: pki.switch.key } }, 'listen.tls', /unusable certificate, key or CA/);
    const junk = join(pki.dir, 'junk.pem');
    writeFileSync(junk, 'not a certificate\n');
    rejects({ tls: { ...tls(), cert: junk } }, 'listen.tls', /unusable certificate, key or CA/);
  });
});
