// The etcd JSON-gateway decoding: base64 keys/values, int64-as-string ids beyond 2^53, watch-stream lines.
// Sample messages are as etcd 3.4.23's gateway sent them (captured with curl).
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { b64, unb64, toBigInt, decodeKv, parseWatchMessage, LineSplitter, EtcdClient, EtcdError } from '../../controller/ha/etcd-client.ts';

const HDR = '"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"3","raft_term":"2"}';
const CREATED = `{"result":{${HDR},"created":true}}`;
const EVENTS = `{"result":{${HDR},"events":[{"kv":{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1",`
  + `"value":"YmFy","lease":"2324035704031601934"}},{"type":"DELETE","kv":{"key":"Zm9v","mod_revision":"3"}}]}}`;

describe('HA etcd client: decoding', () => {
  it('base64-encodes keys and values as UTF-8', () => {
    assert.equal(b64('foo'), 'Zm9v');
    assert.equal(unb64('YmFy'), 'bar');
    assert.equal(unb64(b64('/tcp-migrate/leader/ü')), '/tcp-migrate/leader/ü');
    assert.equal(unb64(undefined), ''); // protobuf-JSON omits empty bytes
  });

  it('reads int64 strings as bigints without losing precision', () => {
    assert.equal(toBigInt('2324035704031601934'), 2324035704031601934n);
    assert.equal(toBigInt('9223372036854775807'), 2n ** 63n - 1n);
    assert.equal(toBigInt('-1'), -1n);
    assert.equal(toBigInt(undefined), 0n); // zero values are omitted
    assert.equal(toBigInt(7), 7n);
    assert.throws(() => toBigInt(2 ** 60), TypeError); // a JS number that big has already lost digits
    assert.throws(() => toBigInt('12abc'), TypeError);
    assert.throws(() => toBigInt(1.5), TypeError);
  });

  it('decodes a KeyValue, defaulting omitted fields', () => {
    assert.deepEqual(decodeKv({ key: 'Zm9v', create_revision: '2', mod_revision: '5', version: '3', value: 'YmFy', lease: '2324035704031601934' }), {
      key: 'foo', value: 'bar', createRevision: 2n, modRevision: 5n, version: 3n, lease: 2324035704031601934n,
    });
    assert.deepEqual(decodeKv({ key: 'Zm9v', mod_revision: '3' }), { key: 'foo', value: '', createRevision: 0n, modRevision: 3n, version: 0n, lease: 0n });
  });

  it('parses watch messages: created, put and delete events', () => {
    assert.deepEqual(parseWatchMessage('e', CREATED), { created: true, events: [] });
    const m = parseWatchMessage('e', EVENTS);
    assert.equal(m.created, false);
    assert.deepEqual(m.events.map((e) => [e.type, e.kv.key, e.kv.value, e.kv.lease]), [
      ['put', 'foo', 'bar', 2324035704031601934n], ['delete', 'foo', '', 0n]]);
  });

  it('turns a cancelled watch and a stream error into EtcdError', () => {
    const compacted = `{"result":{${HDR},"canceled":true,"compact_revision":"4"}}`;
    assert.throws(() => parseWatchMessage('http://x', compacted), (e: unknown) =>
      e instanceof EtcdError && e.endpoint === 'http://x' && /compacted at revision 4/.test(e.message));
    const streamErr = '{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}';
    assert.throws(() => parseWatchMessage('e', streamErr), (e: unknown) => e instanceof EtcdError && e.code === 14 && /no leader/.test(e.message));
    assert.throws(() => parseWatchMessage('e', 'garbage'), (e: unknown) => e instanceof EtcdError && e.kind === 'protocol');
  });

  it('recognises "lease not found"', () => {
    assert.equal(new EtcdError('e', 'etcdserver: requested lease not found', 'server', 5).leaseNotFound, true);
    assert.equal(new EtcdError('e', 'unreachable (ECONNREFUSED)', 'unreachable').leaseNotFound, false);
  });

  it('normalises endpoints', () => {
    assert.deepEqual(new EtcdClient({ endpoints: ['http://127.0.0.1:2379/', 'http://h:1'] }).endpoints, ['http://127.0.0.1:2379', 'http://h:1']);
    assert.throws(() => new EtcdClient({ endpoints: [] }));
  });
});

describe('HA etcd client: watch stream splitting', () => {
  it('keeps a partial line until its newline arrives', () => {
    const s = new LineSplitter();
    assert.deepEqual(s.push(CREATED.slice(0, 10)), []);
    assert.equal(s.pending, CREATED.slice(0, 10));
    assert.deepEqual(s.push(CREATED.slice(10) + '\n' + EVENTS.slice(0, 5)), [CREATED]);
    assert.deepEqual(s.push(EVENTS.slice(5) + '\n'), [EVENTS]);
    assert.equal(s.pending, '');
  });

  it('returns several lines from one chunk and skips blank ones', () => {
    assert.deepEqual(new LineSplitter().push(`${CREATED}\n\n${EVENTS}\n`), [CREATED, EVENTS]);
  });

  it('reassembles the same lines however the stream is cut', () => {
    const stream = `${CREATED}\n${EVENTS}\n${CREATED}\n`;
    fc.assert(fc.property(fc.uniqueArray(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 20 }), (cuts) => {
      const s = new LineSplitter();
      const out: string[] = [];
      let at = 0;
      for (const c of [...cuts.sort((a, b) => a - b), stream.length]) { out.push(...s.push(stream.slice(at, c))); at = c; }
      assert.deepEqual(out, [CREATED, EVENTS, CREATED]);
      assert.equal(s.pending, '');
    }));
  });
});
