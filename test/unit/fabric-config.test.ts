// The `fabric` config key: on/off, discovery timing, links given by hand, and errors that name the key.
import assert from 'node:assert/strict';
import { parseConfig, ConfigError } from '../../controller/config.ts';
import { FABRIC_DEFAULTS } from '../../controller/fabric/fabric-config.ts';

const A1 = '00000000000000a1';
const A2 = '00000000000000a2';

function refused(fabric: unknown, key: RegExp): void {
  assert.throws(() => parseConfig({ fabric }), (e: unknown) => e instanceof ConfigError && key.test(e.key), JSON.stringify(fabric));
}

describe('fabric config', () => {
  it('is off unless asked for; `true` means LLDP discovery with the defaults', () => {
    assert.equal(parseConfig({}).fabric, undefined);
    assert.equal(parseConfig({ fabric: false }).fabric, undefined);
    assert.deepEqual(parseConfig({ fabric: true }).fabric, FABRIC_DEFAULTS);
    assert.deepEqual(FABRIC_DEFAULTS, { lldp: true, lldpIntervalMs: 1000, linkTimeoutMs: 3500, links: [] });
  });

  it('takes timing and links; link ends are "dpid:port", the dpid normalised to 16 hex digits', () => {
    const f = parseConfig({ fabric: { lldp: false, lldpIntervalMs: 500, linkTimeoutMs: 2000, links: [{ a: 'a1:2', b: '0x00000000000000A2:3' }] } }).fabric!;
    assert.deepEqual(f, { lldp: false, lldpIntervalMs: 500, linkTimeoutMs: 2000, links: [{ a: { dpid: A1, port: 2 }, b: { dpid: A2, port: 3 } }] });
  });

  it('refuses what cannot be meant, naming the key', () => {
    refused('yes', /^fabric$/);
    refused({ lldpInterval: 5 }, /^fabric\.lldpInterval$/);
    refused({ lldp: 'on' }, /^fabric\.lldp$/);
    refused({ lldpIntervalMs: 10 }, /^fabric\.lldpIntervalMs$/);
    refused({ lldpIntervalMs: 1000, linkTimeoutMs: 1000 }, /^fabric\.linkTimeoutMs$/);
    refused({ links: {} }, /^fabric\.links$/);
    refused({ links: [{ a: `${A1}:2` }] }, /^fabric\.links\[0\]\.b$/);
    refused({ links: [{ a: `${A1}:2`, b: `${A2}:0` }] }, /^fabric\.links\[0\]\.b$/);
    refused({ links: [{ a: `${A1}:2`, b: 'switch2:1' }] }, /^fabric\.links\[0\]\.b$/);
    refused({ links: [{ a: `${A1}:2`, b: `${A2}:2`, c: 1 }] }, /^fabric\.links\[0\]\.c$/);
    refused({ links: [{ a: `${A1}:2`, b: `${A1}:3` }] }, /^fabric\.links\[0\]$/);
    refused({ links: [{ a: `${A1}:2`, b: `${A2}:2` }, { a: `${A2}:2`, b: '00000000000000a3:1' }] }, /^fabric\.links\[1\]\.a$/);
  });
});
