// Shared by the live Snort 3 tests (not a test file itself).
import { snortVersion } from '../../topo/lib/snort.ts';

/**
 * Snort 3's version. When it is missing: in CI (process.env.CI) the suite FAILS with the fix
 * named, since CI installs it (topo/install-deps.sh → topo/install-snort.sh); locally the suite is
 * pending.
 */
export async function requireSnort(ctx: Mocha.Context): Promise<string> {
  const v = await snortVersion();
  if (v?.startsWith('3.')) return v;
  const msg = v
    ? `snort ${v} is not Snort 3: run \`bash topo/install-snort.sh\``
    : 'Snort 3 is not installed: run `bash topo/install-snort.sh` (SNORT_BUNDLE=… or ../shared/ids/snort3/snort3-bundle.tar.gz)';
  if (process.env.CI) throw new Error(msg);
  console.log(`      (pending: ${msg})`);
  ctx.skip();
  return '';
}
