// The controller core against a real Open vSwitch (Debian's stock build, userspace datapath),
// with Linux hosts in network namespaces.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync, rmSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:net';
import { Ovs, STOCK_PREFIX } from '../lib/ovs.ts';
import { TestNet, type Host } from '../lib/netns.ts';
import { startController, nextSwitchReady } from '../lib/controller.ts';
import { waitFor } from '../lib/exec.ts';
import type { Controller } from '../../controller/controller.ts';
import { encodeMessage, decodeMessage, splitMessages, OFPET, type OfpMessage } from '../../controller/openflow/index.ts';

const BR = `tmtbr${randomBytes(2).toString('hex')}`;

describe('controller core with a real Open vSwitch', function () {
  this.timeout(120000);
  let ovs: Ovs;
  let net: TestNet;
  let controller: Controller;
  let h1: Host;
  let h2: Host;
  let tmp: string;
  let ofPort: number;

  before(async () => {
    tmp = mkdtempSync('/tmp/tmt-data-');
    const started = await startController();
    controller = started.controller;
    ofPort = started.port;
    ovs = await Ovs.start({ prefix: STOCK_PREFIX });
    // The version negotiation is logged at debug level only.
    await ovs.appctl('vlog/set', 'vconn:file:dbg');
    net = TestNet.create();
    h1 = await net.addHost('h1', '10.0.0.1/24');
    h2 = await net.addHost('h2', '10.0.0.2/24');
    const ready = nextSwitchReady(controller);
    await ovs.addBridge(BR, { controller: started.target, datapathId: '00000000000000a1' });
    await ovs.addPort(BR, h1.peer, 1);
    await ovs.addPort(BR, h2.peer, 2);
    await ready;
  });

  after(async () => {
    await net?.destroy();
    await ovs?.stop();
    await controller?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('negotiates OpenFlow 1.3 and installs the table-miss flow', async () => {
    const [sw] = controller.switches;
    assert.equal(sw.features?.datapathId, 0xa1n);
    const flows = await ovs.ofctl('-O', 'OpenFlow13', 'dump-flows', BR);
    assert.match(flows, /cookie=0x100000000000000,.*priority=0 actions=CONTROLLER:65535/);
    // ovs-vswitchd logs the version it negotiated on its channel to this controller (its log
    // writer is asynchronous: the line may reach the file a moment after the switch is ready).
    const negotiated = new RegExp(`\\|vconn\\|DBG\\|tcp:127\\.0\\.0\\.1:${ofPort}: negotiated OpenFlow version 0x04 \\(we support version 0x04, peer supports version 0x04\\)`);
    await waitFor(() => negotiated.test(ovs.log()), 'ovs-vswitchd to log the negotiated version', 5000).catch(() => assert.match(ovs.log(), negotiated));
  });

  it('lets hosts ping each other through learned flows', async () => {
    const r = await h1.exec(['ping', '-c', '3', '-i', '0.2', '-W', '2', h2.ip]);
    assert.match(r.stdout, /3 received/);
    const flows = await ovs.ofctl('-O', 'OpenFlow13', 'dump-flows', BR);
    assert.match(flows, new RegExp(`cookie=0x200000000000000, .*in_port=1,dl_src=${h1.mac},dl_dst=${h2.mac} actions=output:2`));
    assert.match(flows, new RegExp(`in_port=2,dl_src=${h2.mac},dl_dst=${h1.mac} actions=output:1`));
  });

  it('carries a 16 MB TCP transfer intact through controller-installed flows', async () => {
    const data = randomBytes(16 * 1024 * 1024);
    const file = join(tmp, 'payload');
    writeFileSync(file, data);
    const want = createHash('sha256').update(data).digest('hex');
    const server = h2.spawn(['sh', '-c', 'nc -l 5001 | sha256sum']);
    let out = '';
    server.stdout!.on('data', (d) => (out += d));
    const exited = once(server, 'exit');
    await waitFor(async () => (await h2.exec(['ss', '-Hltn', 'sport = :5001'])).stdout.includes('5001'), 'listener in h2');
    await h1.exec(['sh', '-c', `nc -N ${h2.ip} 5001 < ${file}`], { timeoutMs: 60000 });
    await exited;
    assert.equal(out.split(/\s/)[0], want);
  });

  it('sees ovs-vswitchd die and works again after it restarts', async () => {
    const gone = once(controller, 'switch_gone', { signal: AbortSignal.timeout(20000) });
    await ovs.killVswitchd();
    const [, reason] = await gone;
    assert.equal(typeof reason, 'string');
    assert.equal(controller.switches.length, 0);
    const ready = nextSwitchReady(controller, 30000);
    await ovs.startVswitchd();
    const sw = await ready;
    assert.equal(sw.features?.datapathId, 0xa1n);
    const r = await h1.exec(['ping', '-c', '2', '-i', '0.2', '-W', '2', h2.ip]);
    assert.match(r.stdout, /2 received/);
  });

  it('survives malformed messages from a fake switch', async () => {
    const sock = connect(ofPort, '127.0.0.1');
    await once(sock, 'connect');
    const replies: OfpMessage[] = [];
    let rx: Buffer = Buffer.alloc(0);
    sock.on('data', (d) => {
      rx = Buffer.concat([rx, d]);
      const s = splitMessages(rx);
      if (!s.ok) return;
      rx = s.value.rest;
      for (const m of s.value.messages) { const r = decodeMessage(m); if (r.ok) replies.push(r.value); }
    });
    sock.write(encodeMessage({ type: 'hello', xid: 1, versions: [4] }));
    await waitFor(() => replies.some((m) => m.type === 'features_request'), 'features request');
    const fr = replies.find((m) => m.type === 'features_request')!;
    sock.write(encodeMessage({ type: 'features_reply', xid: fr.xid, datapathId: 0xbadn, nBuffers: 0, nTables: 254, auxiliaryId: 0, capabilities: 0 }));
    // A PACKET_IN whose body is far too short for its fixed part.
    const bad = Buffer.from('04 0a 00 0c 00 00 00 63 00 00 00 00'.replace(/ /g, ''), 'hex');
    sock.write(bad);
    await waitFor(() => replies.some((m) => m.type === 'error' && m.xid === 0x63), 'error reply to the malformed message');
    const err = replies.find((m) => m.type === 'error' && m.xid === 0x63) as Extract<OfpMessage, { type: 'error' }>;
    assert.equal(err.errType, OFPET.BAD_REQUEST);
    // The channel is still alive: an echo is answered.
    sock.write(encodeMessage({ type: 'echo_request', xid: 0x64, data: Buffer.from('ping') }));
    await waitFor(() => replies.some((m) => m.type === 'echo_reply' && m.xid === 0x64), 'echo reply');
    // A header that claims less than 8 bytes cannot be framed: the controller drops this channel only.
    const closed = once(sock, 'close');
    sock.write(Buffer.from('0400000400000065', 'hex'));
    await closed;
    // The real switch is unaffected.
    const r = await h1.exec(['ping', '-c', '1', '-W', '2', h2.ip]);
    assert.match(r.stdout, /1 received/);
  });
});
