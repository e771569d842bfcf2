// Throwaway certificates for OpenFlow over TLS, made with openssl in a temp dir: a CA, the
// controller's and a switch's certificates signed by it, and a rogue CA with a switch certificate
// of its own (what a stranger would present). remove() deletes them all.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './exec.ts';

export interface KeyPair { cert: string; key: string }

export class TestPki {
  private constructor(readonly dir: string) {}

  get ca(): string { return join(this.dir, 'ca.pem'); }
  get controller(): KeyPair { return this.pair('controller'); }
  get switch(): KeyPair { return this.pair('switch'); }
  get rogueCa(): string { return join(this.dir, 'rogue-ca.pem'); }
  get rogueSwitch(): KeyPair { return this.pair('rogue-switch'); }

  static async create(): Promise<TestPki> {
    const pki = new TestPki(mkdtempSync('/tmp/tmt-pki-'));
    try {
      writeFileSync(join(pki.dir, 'leaf.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n');
      await pki.makeCa('ca', 'tmt test CA');
      await pki.makeCa('rogue-ca', 'tmt rogue CA');
      await pki.makeLeaf('controller', 'tmt controller', 'ca');
      await pki.makeLeaf('switch', 'tmt switch', 'ca');
      await pki.makeLeaf('rogue-switch', 'tmt rogue switch', 'rogue-ca');
    } catch (e) {
      pki.remove();
      throw e;
    }
    return pki;
  }

  remove(): void { rmSync(this.dir, { recursive: true, force: true }); }

  private pair(name: string): KeyPair { return { cert: join(this.dir, `${name}.pem`), key: join(this.dir, `${name}.key`) }; }

  private async makeCa(name: string, cn: string): Promise<void> {
    await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${cn}`,
      '-keyout', join(this.dir, `${name}.key`), '-out', join(this.dir, `${name}.pem`)]);
  }

  private async makeLeaf(name: string, cn: string, ca: string): Promise<void> {
    const { cert, key } = this.pair(name);
    const csr = join(this.dir, `${name}.csr`);
    await run('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', key, '-out', csr]);
    await run('openssl', ['x509', '-req', '-in', csr, '-CA', join(this.dir, `${ca}.pem`), '-CAkey', join(this.dir, `${ca}.key`),
      '-CAcreateserial', '-days', '2', '-extfile', join(this.dir, 'leaf.ext'), '-out', cert]);
  }
}
