// Handoff end to end on the patched OVS: the seq/ack shifts run in the datapath.
import { PATCHED_PREFIX, supportsSeqActions } from '../lib/ovs.ts';
import { defineHandoffSuite } from '../lib/handoff-suite.ts';

describe('handoff on patched OVS (datapath fast path)', function () {
  this.timeout(120000);
  before(async function () {
    if (await supportsSeqActions(PATCHED_PREFIX)) return;
    if (process.env.CI) throw new Error(`no patched OVS under ${PATCHED_PREFIX}: run ovs-patch/build.sh`);
    this.skip();
  });
  defineHandoffSuite({ prefix: PATCHED_PREFIX, mode: 'fastpath', bigTransferBytes: 256 << 20, migrations: 200, lossMigrations: 100 });
});
