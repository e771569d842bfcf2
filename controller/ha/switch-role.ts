// OpenFlow 1.3 controller roles (§6.3.7): a master writes, slaves only watch. The switch keeps the
// largest generation_id it has seen and refuses a master or slave request with an older one
// (OFPRRFC_STALE), so a deposed master that comes back cannot take the switch again.
import { OFPCR_ROLE, OFPET, OFPRRFC } from '../openflow/index.ts';
import { OpenFlowError, type SwitchConnection } from '../datapath/switch-connection.ts';

export type ControllerRole = 'master' | 'slave';

export class StaleGenerationError extends Error {}

/** Sends ROLE_REQUEST and resolves with the role and generation the switch confirmed. */
export async function requestRole(sw: SwitchConnection, role: ControllerRole, generationId: bigint): Promise<{ role: number; generationId: bigint }> {
  try {
    const [reply] = await sw.request({ type: 'role_request', xid: 0, role: role === 'master' ? OFPCR_ROLE.MASTER : OFPCR_ROLE.SLAVE, generationId });
    if (reply.type !== 'role_reply') throw new Error(`unexpected ${reply.type} to a role request`);
    return { role: reply.role, generationId: reply.generationId };
  } catch (e) {
    if (e instanceof OpenFlowError && e.errType === OFPET.ROLE_REQUEST_FAILED && e.code === OFPRRFC.STALE) {
      throw new StaleGenerationError(`switch ${sw.describe()} refused role ${role} with generation ${generationId}: it has seen a newer one`);
    }
    throw e;
  }
}
