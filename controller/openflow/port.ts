// ofp_port (64 bytes), used by PORT_STATUS and the PORT_DESC multipart reply.
import { bytesToMac, macToBytes } from './oxm.ts';
import type { Reader } from './reader.ts';
import type { Writer } from './writer.ts';

export interface PortDesc {
  portNo: number;
  /** 'aa:bb:cc:dd:ee:ff' */
  hwAddr: string;
  name: string;
  config: number;
  state: number;
  curr: number;
  advertised: number;
  supported: number;
  peer: number;
  /** kbps */
  currSpeed: number;
  /** kbps */
  maxSpeed: number;
}

export const OFP_PORT_LEN = 64;
export const OFP_MAX_PORT_NAME_LEN = 16;

export function writePort(w: Writer, p: PortDesc): void {
  w.u32(p.portNo, 'port.portNo').zeros(4).bytes(macToBytes(p.hwAddr, 'port.hwAddr')).zeros(2);
  w.fixedString(p.name, OFP_MAX_PORT_NAME_LEN, 'port.name');
  w.u32(p.config, 'port.config').u32(p.state, 'port.state').u32(p.curr, 'port.curr').u32(p.advertised, 'port.advertised');
  w.u32(p.supported, 'port.supported').u32(p.peer, 'port.peer').u32(p.currSpeed, 'port.currSpeed').u32(p.maxSpeed, 'port.maxSpeed');
}

export function readPort(r: Reader): PortDesc {
  const portNo = r.u32('port_no');
  r.skip(4);
  const hwAddr = bytesToMac(r.bytes(6, 'hw_addr'));
  r.skip(2);
  const name = r.fixedString(OFP_MAX_PORT_NAME_LEN, 'port name');
  return {
    portNo,
    hwAddr,
    name,
    config: r.u32('config'),
    state: r.u32('state'),
    curr: r.u32('curr'),
    advertised: r.u32('advertised'),
    supported: r.u32('supported'),
    peer: r.u32('peer'),
    currSpeed: r.u32('curr_speed'),
    maxSpeed: r.u32('max_speed'),
  };
}
