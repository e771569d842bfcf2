// The handoff suite over IPv6: a dual-stack service and bed, the client reaching the service on its
// IPv6 address; on the patched OVS (IPv6 matches, set_field ipv6_*, the seq/ack actions on IPv6) and
// on the stock one (the controller relays, rewriting IPv6 frames).
import { PATCHED_PREFIX, STOCK_PREFIX, requirePatchedOvs } from '../lib/ovs.ts';
import { defineHandoffSuite } from '../lib/handoff-suite.ts';

describe('handoff over IPv6 on patched OVS (datapath fast path)', function () {
  this.timeout(120000);
  before(async function () { await requirePatchedOvs(this); });
  defineHandoffSuite({ prefix: PATCHED_PREFIX, mode: 'fastpath', bigTransferBytes: 64 << 20, migrations: 200, lossMigrations: 50, family: 6 });
});

describe('handoff over IPv6 on stock OVS (relay mode)', function () {
  this.timeout(120000);
  defineHandoffSuite({ prefix: STOCK_PREFIX, mode: 'relay', bigTransferBytes: 16 << 20, migrations: 50, lossMigrations: 20, family: 6 });
});
