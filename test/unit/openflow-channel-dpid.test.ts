// A second connection presenting a connected datapath id (issue 11, item 12): the live switch
// keeps it and the newcomer is refused with HELLO_FAILED/EPERM (logged, throttled); a switch
// that stopped answering echo is replaced (it restarted behind a half-open connection).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { OpenFlowServer } from '../../controller/datapath/openflow-server.ts';
import type { SwitchConnection } from '../../controller/datapath/switch-connection.ts';
import { OFPET, OFPHFC } from '../../controller/openflow/index.ts';
import { FakeSwitch } from '../lib/fake-switch.ts';
import { LogCapture } from '../lib/log-capture.ts';

// Echo keepalive out of the way: only the takeover probe sends echo requests here.
const OPTS = { echoIntervalMs: 60000, deadTimeoutMs: 120000, requestTimeoutMs: 1500 };

describe('OpenFlow channel: duplicate datapath ids', function () {
  this.timeout(30000);
  let server: OpenFlowServer;
  let port: number;
  let logs: LogCapture;
  const fakes: FakeSwitch[] = [];

  beforeEach(async () => {
    logs = new LogCapture('info');
    server = new OpenFlowServer({ host: '127.0.0.1', port: 0, ...OPTS }, logs.logger);
    port = (await server.listen()).port;
  });
  afterEach(async () => {
    for (const f of fakes.splice(0)) f.close();
    await server.close();
  });

  async function dial(dpid: bigint): Promise<FakeSwitch> {
    const sw = await FakeSwitch.connect(port, '127.0.0.1', dpid);
    fakes.push(sw);
    sw.hello();
    return sw;
  }

  it('keeps the live switch and refuses a newcomer with the same datapath id', async () => {
    const up = once(server, 'switch_connected', { signal: AbortSignal.timeout(5000) });
    const real = await dial(7n);
    const [conn] = (await up) as [SwitchConnection];
    const impostor = await dial(7n);
    const err = await impostor.next('error');
    assert.equal(err.errType, OFPET.HELLO_FAILED);
    assert.equal(err.code, OFPHFC.EPERM);
    await impostor.waitClosed();
    // The live switch was asked whether it is alive, answered, and still holds the datapath id.
    await real.next('echo_request');
    assert.equal(server.get(7n), conn);
    assert.equal(conn.connected, true);
    assert.equal(server.stats.refusedDuplicates, 1);
    const line = await logs.waitFor((l) => /refused a connection claiming a connected datapath id/.test(l.msg), 'about the refusal');
    assert.equal(line.level, 'warn');
    assert.equal(line.dpid, '0000000000000007');
  });

  it('throttles the log of repeated refusals', async () => {
    const up = once(server, 'switch_connected', { signal: AbortSignal.timeout(5000) });
    await dial(8n);
    await up;
    const N = 60;
    const start = Date.now();
    const impostors = await Promise.all(Array.from({ length: N }, () => dial(8n)));
    await Promise.all(impostors.map((s) => s.waitClosed(10000)));
    const seconds = Math.ceil((Date.now() - start) / 1000);
    assert.equal(server.stats.refusedDuplicates, N);
    const lines = logs.at('warn', /refused a connection/);
    assert.ok(lines.length <= 20 * (seconds + 1), `${lines.length} lines for ${N} refusals in ~${seconds} s`);
    assert.equal(server.connected.length, 1);
  });

  it('replaces a channel that no longer answers echo', async () => {
    const up = once(server, 'switch_connected', { signal: AbortSignal.timeout(5000) });
    const stale = await dial(9n);
    const [old] = (await up) as [SwitchConnection];
    stale.autoEcho = false;
    const closed = once(old, 'close', { signal: AbortSignal.timeout(10000) });
    const next = once(server, 'switch_connected', { signal: AbortSignal.timeout(10000) });
    await dial(9n);
    const [[reason], [fresh]] = await Promise.all([closed, next]) as [[string], [SwitchConnection]];
    assert.match(reason, /stopped answering echo/);
    assert.notEqual(fresh, old);
    assert.equal(server.get(9n), fresh);
    assert.equal(server.connected.length, 1);
  });

  it('takes over at once when the old channel is already closed (a switch reconnecting)', async () => {
    const up = once(server, 'switch_connected', { signal: AbortSignal.timeout(5000) });
    const first = await dial(10n);
    await up;
    const gone = once(server, 'switch_disconnected', { signal: AbortSignal.timeout(5000) });
    first.close();
    await gone;
    const next = once(server, 'switch_connected', { signal: AbortSignal.timeout(5000) });
    await dial(10n);
    const [fresh] = (await next) as [SwitchConnection];
    assert.equal(server.get(10n), fresh);
    assert.equal(server.stats.refusedDuplicates, 0);
  });
});
