// The traffic corpus the analyzer comparisons run on (not a test file itself): 23 client/server
// flows built with the packet codec (case, hex, negated content, lists, ranges, `<>`, URG/ECE/FIN
// data segments, a pattern split across segments), written as one pcap.
import { buildTcpFrame, PcapFile, type TcpFlagsSpec } from '../../controller/packet/index.ts';

interface Seg { from: 'client' | 'server'; payload: string | Buffer; flags?: TcpFlagsSpec }
interface FlowSpec { client?: string; server?: string; sport: number; dport?: number; segs: Seg[] }

export const CORPUS: FlowSpec[] = [
  { sport: 40001, segs: [{ from: 'client', payload: 'please migrate this connection\n' }] },
  { sport: 40002, segs: [{ from: 'client', payload: 'MIGRATE NOW' }] },
  { sport: 40003, segs: [{ from: 'client', payload: 'forward me' }] },
  { sport: 40004, segs: [{ from: 'client', payload: 'Forward AND migrate' }] },
  { sport: 40005, segs: [{ from: 'client', payload: 'neither here nor there' }] },
  { sport: 40006, segs: [{ from: 'client', payload: 'relocate please', flags: { ack: true } }] },
  { sport: 40007, segs: [{ from: 'client', payload: 'urgent migrate', flags: { ack: true, psh: true, urg: true } }] },
  { sport: 40008, segs: [{ from: 'client', payload: 'ecn migrate', flags: { ack: true, psh: true, ece: true } }] },
  { sport: 40009, segs: [{ from: 'client', payload: Buffer.from([0x00, 0xde, 0xad, 0xbe, 0xef, 0x0a]) }] },
  { sport: 40010, segs: [{ from: 'client', payload: 'last words: migrate', flags: { ack: true, psh: true, fin: true } }] },
  { sport: 40022, segs: [{ from: 'client', payload: 'urgent last words: migrate', flags: { ack: true, psh: true, fin: true, urg: true } }] },
  { sport: 40011, segs: [{ from: 'client', payload: 'hello' }, { from: 'server', payload: 'forward from server' }] },
  { sport: 40012, dport: 80, server: '10.0.0.5', segs: [{ from: 'client', payload: 'GET /migrate HTTP/1.0\r\n\r\n' }] },
  { sport: 40013, dport: 8080, server: '10.0.0.5', segs: [{ from: 'client', payload: 'GET /forward HTTP/1.0\r\n\r\n' }] },
  { sport: 40014, segs: [{ from: 'client', payload: 'MiGrAtE mixed case' }] },
  { sport: 40015, segs: [{ from: 'client', payload: 'secret token' }, { from: 'client', payload: 'public token' }] },
  { sport: 40016, client: '192.168.1.5', segs: [{ from: 'client', payload: 'outsider wants to migrate' }] },
  { sport: 40017, client: '10.0.0.3', segs: [{ from: 'client', payload: 'forward from .3' }] },
  { sport: 39999, segs: [{ from: 'client', payload: 'forward from low port' }] },
  { sport: 40018, segs: [{ from: 'client', payload: 'x a;b"c\\d y' }] },
  { sport: 40019, segs: [{ from: 'client', payload: 'CONTinued line' }] },
  { sport: 40020, dport: 7000, client: '172.16.0.9', segs: [{ from: 'client', payload: 'outsider migrate to 7000' }] },
  { sport: 40021, segs: [{ from: 'client', payload: 'mig' }, { from: 'client', payload: 'rate split' }] },
];

export async function buildCorpus(path: string): Promise<void> {
  const f = await PcapFile.open(path);
  let t = 1700000000000;
  for (const fl of CORPUS) {
    const cip = fl.client ?? '10.0.0.2';
    const sip = fl.server ?? '10.0.0.1';
    const dport = fl.dport ?? 5001;
    const c = { ethSrc: '02:00:00:00:00:02', ethDst: '02:00:00:00:00:01', ipSrc: cip, ipDst: sip, srcPort: fl.sport, dstPort: dport, window: 8192 };
    const s = { ethSrc: '02:00:00:00:00:01', ethDst: '02:00:00:00:00:02', ipSrc: sip, ipDst: cip, srcPort: dport, dstPort: fl.sport, window: 8192 };
    let cs = 1000;
    let ss = 5000;
    f.write(buildTcpFrame({ ...c, seq: cs++, ack: 0, flags: { syn: true } }), t++);
    f.write(buildTcpFrame({ ...s, seq: ss++, ack: cs, flags: { syn: true, ack: true } }), t++);
    f.write(buildTcpFrame({ ...c, seq: cs, ack: ss, flags: { ack: true } }), t++);
    let finned = false;
    for (const g of fl.segs) {
      const pl = typeof g.payload === 'string' ? Buffer.from(g.payload) : g.payload;
      const flags = g.flags ?? { psh: true, ack: true };
      if (g.from === 'client') {
        f.write(buildTcpFrame({ ...c, seq: cs, ack: ss, flags, payload: pl, ...(flags.urg ? { urgent: 1 } : {}) }), t++);
        cs += pl.length + (flags.fin ? 1 : 0);
        f.write(buildTcpFrame({ ...s, seq: ss, ack: cs, flags: { ack: true } }), t++);
        finned ||= !!flags.fin;
      } else {
        f.write(buildTcpFrame({ ...s, seq: ss, ack: cs, flags, payload: pl }), t++);
        ss += pl.length;
        f.write(buildTcpFrame({ ...c, seq: cs, ack: ss, flags: { ack: true } }), t++);
      }
    }
    if (!finned) {
      f.write(buildTcpFrame({ ...c, seq: cs++, ack: ss, flags: { fin: true, ack: true } }), t++);
    }
    f.write(buildTcpFrame({ ...s, seq: ss++, ack: cs, flags: { fin: true, ack: true } }), t++);
    f.write(buildTcpFrame({ ...c, seq: cs, ack: ss, flags: { ack: true } }), t++);
  }
  await f.close();
}
