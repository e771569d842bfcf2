// Handoff end to end on the patched OVS: the seq/ack shifts run in the datapath.
import { PATCHED_PREFIX, requirePatchedOvs } from '../lib/ovs.ts';
import { defineHandoffSuite } from '../lib/handoff-suite.ts';

describe('handoff on patched OVS (datapath fast path)', function () {
  this.timeout(120000);
  before(async function () { await requirePatchedOvs(this); });
  defineHandoffSuite({ prefix: PATCHED_PREFIX, mode: 'fastpath', bigTransferBytes: 256 << 20, migrations: 200, lossMigrations: 100 });
});
