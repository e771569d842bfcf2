// The QUIC test peers for the tests: topo/lib/quic-peers.ts (shared with the demo), and the check
// that their root is there (CI fails without it, elsewhere the suite skips).
import { run } from './exec.ts';
import { QUIC_ROOT, QUIC_ROOT_SCRIPT } from '../../topo/lib/quic-peers.ts';
export * from '../../topo/lib/quic-peers.ts';

/** The QUIC root must exist (built by topo/install-deps.sh); in CI its absence fails naming the fix, elsewhere it skips. */
export async function requireQuicRoot(ctx: Mocha.Context): Promise<void> {
  const r = await run('bash', [QUIC_ROOT_SCRIPT, 'status'], { allowFail: true, env: { ...process.env, TMT_QUIC_ROOT: QUIC_ROOT } });
  if (r.code === 0) return;
  const why = `the QUIC test peers' root is not usable (${(r.stdout + r.stderr).trim()}); fix: bash topo/quic-root.sh build (as root)`;
  if (process.env.CI) throw new Error(why);
  ctx.skip();
}
