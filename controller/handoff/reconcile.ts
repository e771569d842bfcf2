// Reconciling a (re)connected switch with what the controller remembers, both ways (DESIGN.md §8):
// flows of known connections are kept or reinstalled, flows of unknown connections are adopted,
// flows nobody can interpret (or of connections that ended while the switch was away) go, and a
// closing connection's flows are left to their idle timeout.
// Pure: the engine turns the plan into Flow-Mods and Connection objects.
import type { FlowStats } from '../openflow/index.ts';
import { CONN_ROLE, connRoleOf } from '../cookies.ts';
import { adoptConnection, flowsMatchPlan, type Adoption, type AdoptionContext, type ConnectionFlowSpec } from './flow-plan.ts';

/** Roles whose flows expire on their own: never adopted, never the reason for a reinstall. */
const TRANSIENT = new Set<bigint>([CONN_ROLE.closing, CONN_ROLE.leg]);

export interface ReconcilePlan {
  /** Known connections whose flows are on the switch exactly as planned. */
  keep: number[];
  /** Known connections whose flows are missing or differ: delete what is there, install the plan. */
  reinstall: number[];
  /** Connections the controller did not know, rebuilt from their flows (reinstalled too when inexact). */
  adopt: Extract<Adoption, { ok: true }>[];
  /** Flows deleted, with why. */
  drop: { id: number; why: string }[];
}

/**
 * @param known connection id → the spec of the flows it should have, or undefined when its phase
 *   has no flows (handshake, held): any flows found for it are dropped.
 * @param ended ids of connections that ended while the switch was away: their flows go.
 */
export function planReconciliation(known: Map<number, ConnectionFlowSpec | undefined>, ended: ReadonlySet<number>, found: Map<number, FlowStats[]>, ctx: AdoptionContext): ReconcilePlan {
  const plan: ReconcilePlan = { keep: [], reinstall: [], adopt: [], drop: [] };
  for (const [id, spec] of known) {
    const flows = found.get(id)?.filter((f) => connRoleOf(f.cookie) !== CONN_ROLE.leg);
    if (!spec) { if (flows?.length) plan.drop.push({ id, why: 'the connection has no flows in its phase' }); continue; }
    if (flows && flowsMatchPlan(spec, flows)) plan.keep.push(id);
    else plan.reinstall.push(id);
  }
  for (const [id, flows] of found) {
    if (known.has(id)) continue;
    if (ended.has(id)) { plan.drop.push({ id, why: 'the connection ended while the switch was away' }); continue; }
    // A closing connection's flows and a replay's leg flow go by themselves; nothing to adopt.
    const live = flows.filter((f) => !TRANSIENT.has(connRoleOf(f.cookie)));
    if (live.length === 0) continue;
    const a = adoptConnection(live, ctx);
    if (a.ok) plan.adopt.push(a); else plan.drop.push({ id, why: a.why });
  }
  return plan;
}
