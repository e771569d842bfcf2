// EVE record parsing with real Suricata 7.0.10 records (test/fixtures/ids/suricata-alert-sample.json).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseEveRecord, parseEveTime, SuricataEveSource } from '../../controller/analyzers/suricata-eve.ts';

const SAMPLE = JSON.parse(readFileSync(new URL('../fixtures/ids/suricata-alert-sample.json', import.meta.url), 'utf8'));

describe('analyzers: Suricata EVE records', () => {
  it('offline unix_dgram datagram: sid, msg, verdict, flow and seq/ack from the packet', () => {
    const raw: string = SAMPLE.offline_pcap_unix_dgram.raw_datagram;
    assert.ok(raw.endsWith('}\n'));
    const r = parseEveRecord(raw);
    assert.ok(r.ok && r.value.kind === 'alert');
    assert.deepEqual(r.value.alert, {
      source: 'suricata', verdict: 'MIGRATE', msg: 'MIGRATE', gid: 1, sid: 1000002, rev: 0, priority: 3,
      flow: { srcIp: '10.0.0.2', srcPort: 40000, dstIp: '10.0.0.1', dstPort: 5001 }, seq: 1001, ack: 5001, payloadLength: 31,
      time: new Date(1700000000003),
    });
  });

  it('live af-packet records (TCP options, big flow_id) and the unix_stream line', () => {
    for (const rec of SAMPLE.live_afpacket_unix_dgram.all_live_alerts) {
      const r = parseEveRecord(JSON.stringify(rec));
      assert.ok(r.ok && r.value.kind === 'alert');
      const a = r.value.alert;
      assert.equal(a.sid, 1000002);
      assert.deepEqual(a.flow, { srcIp: rec.src_ip, srcPort: rec.src_port, dstIp: rec.dest_ip, dstPort: rec.dest_port });
      const pkt = Buffer.from(rec.packet, 'base64');
      assert.equal(a.seq, pkt.readUInt32BE(14 + 20 + 4));
      assert.equal(a.payloadLength, Buffer.from(rec.payload, 'base64').length);
      assert.deepEqual(a.time, parseEveTime(rec.timestamp));
    }
    const l = parseEveRecord(SAMPLE.offline_pcap_unix_stream_line.line);
    assert.ok(l.ok && l.value.kind === 'alert' && l.value.alert.seq === 1001);
  });

  it('falls back to the 5-tuple without a packet; tolerates unknown fields', () => {
    const rec = { ...SAMPLE.offline_pcap_unix_dgram.parsed, packet: undefined, future_field: { x: [1] }, alert: { ...SAMPLE.offline_pcap_unix_dgram.parsed.alert, signature: '"FORWARD x"', category: 'Misc activity', new: 1 } };
    const r = parseEveRecord(JSON.stringify(rec));
    assert.ok(r.ok && r.value.kind === 'alert');
    assert.equal(r.value.alert.verdict, 'FORWARD');
    assert.equal(r.value.alert.msg, 'FORWARD x');
    assert.equal(r.value.alert.classification, 'Misc activity');
    assert.deepEqual(r.value.alert.flow, { srcIp: '10.0.0.2', srcPort: 40000, dstIp: '10.0.0.1', dstPort: 5001 });
    assert.equal(r.value.alert.seq, undefined);
  });

  it('bad packets keep the alert with the record 5-tuple', () => {
    const rec = { ...SAMPLE.offline_pcap_unix_dgram.parsed, packet: Buffer.from('short').toString('base64') };
    const r = parseEveRecord(JSON.stringify(rec));
    assert.ok(r.ok && r.value.kind === 'alert');
    assert.match(r.value.packetError!, /packet: /);
    assert.equal(r.value.alert.flow!.srcPort, 40000);
    const raw = { ...rec, packet_info: { linktype: 101 } };
    const r2 = parseEveRecord(JSON.stringify(raw));
    assert.ok(r2.ok && r2.value.kind === 'alert' && /linktype 101/.test(r2.value.packetError!));
  });

  it('other event types, invalid JSON and malformed alerts', () => {
    const flow = parseEveRecord('{"event_type":"flow","src_ip":"1.2.3.4"}');
    assert.ok(flow.ok && flow.value.kind === 'other' && flow.value.eventType === 'flow');
    for (const [t, re] of [
      ['{not json', /invalid JSON/], ['[1,2]', /not a JSON object/], ['{"x":1}', /event_type/], ['null', /not a JSON object/],
      ['{"event_type":"alert"}', /"alert" object/], ['{"event_type":"alert","alert":{"signature_id":-1}}', /signature_id/],
    ] as const) {
      const r = parseEveRecord(t);
      assert.ok(!r.ok, t);
      assert.match(r.error.message, re);
    }
  });

  it('handleText counts everything and never throws', () => {
    const s = new SuricataEveSource({ dgramPath: '/nonexistent/unused.sock' });
    const good = SAMPLE.offline_pcap_unix_dgram.raw_datagram as string;
    const got = s.handleText(good + '{"event_type":"stats"}\n' + 'garbage\n\n' + '{"event_type":"alert","alert":{}}\n');
    assert.equal(got.length, 1);
    assert.deepEqual(
      [s.stats.records, s.stats.alerts, s.stats.ignored_events, s.stats.invalid_json, s.stats.invalid_alerts],
      [4, 1, 1, 1, 1]);
  });

  it("'activity' for analyzer health: alert, heartbeat (EVE stats), other; a throwing listener is only counted", () => {
    const s = new SuricataEveSource({ dgramPath: '/nonexistent/unused.sock' });
    const kinds: string[] = [];
    s.on('activity', (k) => kinds.push(k));
    s.handleText(SAMPLE.offline_pcap_unix_dgram.raw_datagram + '{"event_type":"stats","stats":{}}\n{"event_type":"flow"}\ngarbage\n');
    assert.deepEqual(kinds, ['alert', 'heartbeat', 'other']);
    s.on('activity', () => { throw new Error('boom'); });
    s.handleText('{"event_type":"stats"}\n');
    assert.equal(s.stats.listener_errors, 1);
  });
});
