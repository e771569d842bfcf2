// Handoff end to end on Debian's stock OVS: no seq/ack actions, so the controller relays.
import { STOCK_PREFIX } from '../lib/ovs.ts';
import { defineHandoffSuite } from '../lib/handoff-suite.ts';

describe('handoff on stock OVS (relay mode)', function () {
  this.timeout(120000);
  defineHandoffSuite({ prefix: STOCK_PREFIX, mode: 'relay', bigTransferBytes: 40 << 20, migrations: 200, lossMigrations: 50 });
});
