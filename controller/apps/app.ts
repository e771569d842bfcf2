// The contract between the controller core and its apps. The core hands each Packet-In to the
// apps in order until one claims it; the learning switch comes last and claims everything else.
import type { OfpMessage } from '../openflow/index.ts';
import type { ParsedFrame } from '../packet/index.ts';
import type { SwitchConnection } from '../datapath/switch-connection.ts';

export type PacketIn = Extract<OfpMessage, { type: 'packet_in' }>;
export type FlowRemoved = Extract<OfpMessage, { type: 'flow_removed' }>;
export type PortStatus = Extract<OfpMessage, { type: 'port_status' }>;

export interface App {
  readonly name: string;
  /** Called after the core has reset the switch's tables and installed the table-miss flow. */
  switchReady?(sw: SwitchConnection): Promise<void> | void;
  switchGone?(sw: SwitchConnection, reason: string): void;
  /** Returns true when the app took the packet. `frame` is undefined when the bytes did not parse. */
  packetIn?(sw: SwitchConnection, pi: PacketIn, frame: ParsedFrame | undefined): boolean;
  flowRemoved?(sw: SwitchConnection, msg: FlowRemoved): void;
  portStatus?(sw: SwitchConnection, msg: PortStatus): void;
}
