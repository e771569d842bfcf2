// The API's exposure rules as pure logic, with a fake clock: which Host/Origin names pass, the
// per-address token bucket for failed authentication (refill, bound on tracked addresses), and
// the throttled log. The live behaviour is in test/integration/api-exposure.test.ts.
import assert from 'node:assert/strict';
import { HostPolicy, checkAllowedHost, parseAuthority } from '../../controller/api/host-policy.ts';
import { AuthLimiter, clientAddress } from '../../controller/api/auth-limiter.ts';
import { LogThrottle } from '../../controller/log-throttle.ts';
import { Logger } from '../../controller/log.ts';

describe('API exposure rules', () => {
  it('parses authorities and refuses anything that is not one', () => {
    assert.deepEqual(parseAuthority('LocalHost:6680'), { host: 'localhost', port: '6680' });
    assert.deepEqual(parseAuthority('[::1]:6680'), { host: '[::1]', port: '6680' });
    assert.deepEqual(parseAuthority('ctl.test:80'), { host: 'ctl.test', port: '' });
    for (const bad of ['', 'http://x', 'a/b', 'u@h', 'h h', 'localhost.', 'x:99999', '[::1']) assert.equal(parseAuthority(bad), undefined, bad);
    assert.throws(() => checkAllowedHost('*.example.org'), /without scheme, path or wildcard/);
    assert.throws(() => checkAllowedHost(5), /got 5/);
  });

  it('allows its own names with its port, configured names as configured', () => {
    const p = new HostPolicy('10.1.2.3', 6680, ['ctl.test', 'proxy.test:8443']);
    for (const h of ['10.1.2.3:6680', 'localhost:6680', '127.0.0.1:6680', '[::1]:6680', 'ctl.test', 'ctl.test:6680', 'proxy.test:8443']) assert.equal(p.allows(h), true, h);
    for (const h of [undefined, 'localhost', '10.1.2.3:6681', 'evil.test:6680', 'proxy.test', 'ctl.test:1', 'ctl.test.evil:6680']) assert.equal(p.allows(h), false, String(h));
    assert.equal(p.allowsOrigin('http://localhost:6680'), true);
    assert.equal(p.allowsOrigin('https://ctl.test'), true);
    for (const o of ['null', 'http://evil.test:6680', 'file:///x', 'chrome-extension://abc']) assert.equal(p.allowsOrigin(o), false, o);
    assert.deepEqual(p.describe().slice(0, 2), ['10.1.2.3:6680', 'localhost:6680']);
    // Port 80: the name alone is the name with the port.
    assert.equal(new HostPolicy('127.0.0.1', 80).allows('localhost'), true);
    // A wildcard bind answers to this machine's own addresses.
    assert.equal(new HostPolicy('0.0.0.0', 6680).allows('127.0.0.1:6680'), true);
  });

  it('blocks an address after a burst of failures until the bucket refills, one per interval', () => {
    let now = 1_000_000;
    const l = new AuthLimiter({ burst: 3, refillMs: 60_000, now: () => now });
    for (let i = 0; i < 3; i++) { assert.equal(l.retryAfter('a'), 0); l.fail('a'); }
    assert.equal(l.retryAfter('a'), 60);
    assert.equal(l.retryAfter('b'), 0, 'per address');
    now += 30_000;
    assert.equal(l.retryAfter('a'), 30);
    now += 30_000;
    assert.equal(l.retryAfter('a'), 0);
    l.fail('a');
    assert.equal(l.retryAfter('a'), 60, 'one more failure after one interval');
    now += 3 * 60_000;
    assert.equal(l.retryAfter('a'), 0);
    assert.equal(l.tracked, 0, 'a full bucket is forgotten');
  });

  it('tracks a bounded number of addresses', () => {
    const l = new AuthLimiter({ burst: 1, maxClients: 100 });
    for (let i = 0; i < 1000; i++) l.fail(`10.0.${i >> 8}.${i & 255}`);
    assert.equal(l.tracked, 100);
    assert.ok(l.retryAfter('10.0.3.231') > 0, 'the latest are kept');
    assert.equal(clientAddress('::ffff:127.0.0.1'), '127.0.0.1');
    assert.equal(clientAddress('::1'), '::1');
  });

  it('logs a kind of refusal once per interval and client, then says how many it left out', () => {
    let now = 0;
    const lines: any[] = [];
    const log = new Logger('info', 'json', {}, { write: (s: string) => { lines.push(JSON.parse(s)); } });
    const t = new LogThrottle(log, 10_000, 1000, () => now);
    for (let i = 0; i < 5; i++) t.warn('auth', '127.0.0.1', 'API authentication failed');
    t.warn('auth', '127.0.0.2', 'API authentication failed');
    assert.deepEqual(lines.map((l) => l.client), ['127.0.0.1', '127.0.0.2']);
    now += 10_000;
    t.warn('auth', '127.0.0.1', 'API authentication failed');
    assert.equal(lines.at(-1).suppressed, 4);
  });
});
