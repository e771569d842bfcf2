// Moved to topo/lib/ (the demo uses it too); kept here for the tests' imports.
import { PATCHED_PREFIX, supportsSeqActions, type Ovs } from '../../topo/lib/ovs.ts';
export * from '../../topo/lib/ovs.ts';

/** For a suite that needs the patched OVS: fails under CI when it is missing (CI builds it), skips elsewhere. */
export async function requirePatchedOvs(ctx: Mocha.Context): Promise<void> {
  if (await supportsSeqActions(PATCHED_PREFIX)) return;
  if (process.env.CI) throw new Error(`no patched OVS under ${PATCHED_PREFIX}: run ovs-patch/build.sh`);
  ctx.skip();
}

/** The switch's side of OpenFlow over TLS (`ssl:` controller targets): its key and certificate, and the CA that signed the controller's. */
export async function setSwitchSsl(ovs: Ovs, files: { key: string; cert: string; ca: string }): Promise<void> {
  await ovs.vsctl('set-ssl', files.key, files.cert, files.ca);
}
