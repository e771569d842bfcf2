// The handoff suite on a fabric of three switches (a triangle, `fabric: true`): the client on one,
// server 1 on another, server 2 on the third. Interception and the connection's NAT/shift flows sit
// on the client's switch; the others only pass the connection's packets along its path.
import { PATCHED_PREFIX, requirePatchedOvs } from '../lib/ovs.ts';
import { defineHandoffSuite } from '../lib/handoff-suite.ts';

describe('handoff across a fabric of three switches (patched OVS)', function () {
  this.timeout(120000);
  before(async function () { await requirePatchedOvs(this); });
  defineHandoffSuite({ prefix: PATCHED_PREFIX, mode: 'fastpath', bigTransferBytes: 64 << 20, migrations: 100, lossMigrations: 30, fabric: true });
});

describe('handoff across a fabric of three switches over IPv6 (patched OVS)', function () {
  this.timeout(120000);
  before(async function () { await requirePatchedOvs(this); });
  defineHandoffSuite({ prefix: PATCHED_PREFIX, mode: 'fastpath', bigTransferBytes: 32 << 20, migrations: 50, lossMigrations: 20, fabric: true, family: 6 });
});
