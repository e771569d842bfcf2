// Two docs/api.md claims that need control over timing, checked against the real controller and API
// with a scripted OpenFlow switch on loopback (no root): concurrent GET /api/flows callers share
// one flow-stats request, and an event-stream client that stops reading is disconnected (1013).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Server } from 'node:http';
import { WebSocket, type WebSocketServer } from 'ws';
import { FakeSwitch } from '../lib/fake-switch.ts';
import { startController, nextSwitchReady } from '../lib/controller.ts';
import { startApi, http } from './api-helpers.ts';
import type { Controller } from '../../controller/controller.ts';
import type { ApiServer } from '../../controller/api/index.ts';
import type { OfpMessage } from '../../controller/openflow/index.ts';

type MultipartRequest = Extract<OfpMessage, { type: 'multipart_request' }>;

describe('HTTP API with a scripted switch', function () {
  this.timeout(30000);
  let controller: Controller;
  let api: ApiServer;
  let base: string;
  let sw: FakeSwitch;
  /** Flow-stats requests the switch got once ready; answered only when the test says so. */
  const flowRequests: MultipartRequest[] = [];
  let ready = false;

  /** Answers what the controller asks while it prepares the switch: barriers and empty multiparts. */
  async function serve(): Promise<void> {
    const barriers = (async () => { for (;;) { const m = await sw.next('barrier_request', () => true, 3_600_000); sw.send({ type: 'barrier_reply', xid: m.xid }); } })();
    const multiparts = (async () => {
      for (;;) {
        const m = await sw.next('multipart_request', () => true, 3_600_000);
        if (ready && m.body.kind === 'flow') { flowRequests.push(m); continue; }
        reply(m);
      }
    })();
    await Promise.all([barriers, multiparts]).catch(() => undefined); // ends when the switch closes
  }
  function reply(m: MultipartRequest): void {
    const body = m.body.kind === 'port_desc' ? { kind: 'port_desc' as const, ports: [] } : { kind: 'flow' as const, flows: [] };
    sw.send({ type: 'multipart_reply', xid: m.xid, flags: 0, body });
  }

  before(async () => {
    const started = await startController();
    controller = started.controller;
    ({ api, base } = await startApi(controller));
    const up = nextSwitchReady(controller);
    sw = await FakeSwitch.connect(started.port);
    sw.hello();
    void serve();
    await up;
    ready = true;
  });
  after(async () => {
    sw?.close();
    await api?.stop();
    await controller?.stop();
  });

  it('GET /api/flows: concurrent callers share one flow-stats request; a later call makes a new one', async () => {
    // Resolves once the API server has taken `n` more requests in: its handler, which runs first, has
    // sent whatever it sends to the switch by then.
    const server = (api as unknown as { server: Server }).server;
    const taken = (n: number) => new Promise<void>((resolve) => {
      const on = () => { if (--n === 0) { server.off('request', on); resolve(); } };
      server.on('request', on);
    });
    // An echo round trip on the channel: whatever the controller sent before its reply has arrived.
    let xid = 0x7700;
    const flushed = async () => { const x = xid++; sw.send({ type: 'echo_request', xid: x, data: Buffer.alloc(0) }); await sw.next('echo_reply', (m) => m.xid === x); };

    let t = taken(1);
    const first = http(base, 'GET', '/api/flows');
    await t;
    await flushed();
    assert.equal(flowRequests.length, 1);
    t = taken(3);
    const rest = [1, 2, 3].map(() => http(base, 'GET', '/api/flows'));
    await t;
    await flushed();
    assert.equal(flowRequests.length, 1, 'four concurrent callers, one request to the switch');
    reply(flowRequests[0]);
    const replies = await Promise.all([first, ...rest]);
    for (const r of replies) assert.equal(r.status, 200, r.text);
    assert.deepEqual(replies.map((r) => r.json.switches), replies.map(() => [{ dpid: sw.dpid.toString(16).padStart(16, '0'), flows: 0 }]));
    // Nothing is cached: the next caller asks the switch again.
    t = taken(1);
    const later = http(base, 'GET', '/api/flows');
    await t;
    await flushed();
    assert.equal(flowRequests.length, 2);
    reply(flowRequests[1]);
    assert.equal((await later).status, 200);
  });

  it('disconnects an event-stream client that stops reading (close code 1013) once 4 MiB are queued for it', async () => {
    const ws = new WebSocket(base.replace(/^http/, 'ws') + '/api/events');
    let received = 0;
    ws.on('message', (d) => { received += (d as Buffer).length; });
    await once(ws, 'message'); // hello: subscribed
    ws.pause(); // stops reading its socket: the kernel buffers fill, then the server's queue grows
    const wss = (api as unknown as { wss: WebSocketServer }).wss;
    const [peer] = [...wss.clients];
    // The engine's events, each carrying 64 KiB (a long reason), published until the server gives up
    // on this client; bounded, so a server that never does ends the loop too.
    const view = { id: 1, service: 'echo', phase: 'closed' };
    const why = 'x'.repeat(64 * 1024);
    let published = 0;
    while (peer.readyState === peer.OPEN && published < 64 << 20) {
      for (let i = 0; i < 16; i++) controller.engine.emit('conn_closed', view, why);
      published += 16 * why.length;
      await new Promise((r) => setImmediate(r));
    }
    // Published after the limit: must not reach the client.
    controller.engine.emit('conn_closed', view, 'last');
    const outcome = new Promise<string>((resolve) => {
      ws.once('close', (code) => resolve(`closed with ${code}`));
      setTimeout(() => resolve('still open 15 s after the client read everything it was sent'), 15000).unref();
      ws.on('message', (d) => { if (String(d).includes('"why":"last"')) resolve('got an event published after the limit'); });
    });
    ws.resume();
    assert.equal(await outcome, 'closed with 1013');
    assert.ok(received >= 4 << 20, `the client got what was queued before it was cut off (${received} bytes)`);
  });
});
