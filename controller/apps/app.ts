// The contract between the controller core and its apps. The core hands each Packet-In to the
// apps in order until one claims it; the learning switch comes last and claims everything else.
import type { FlowStats, OfpMessage } from '../openflow/index.ts';
import type { ParsedFrame } from '../packet/index.ts';
import type { SwitchConnection } from '../datapath/switch-connection.ts';

export type PacketIn = Extract<OfpMessage, { type: 'packet_in' }>;
export type FlowRemoved = Extract<OfpMessage, { type: 'flow_removed' }>;
export type PortStatus = Extract<OfpMessage, { type: 'port_status' }>;

export interface App {
  readonly name: string;
  /**
   * Flow cookies' app bytes (cookies.ts APP_ID) this app owns: flows found on a connecting switch
   * with these cookies are the app's to adopt or delete; the core deletes flows nobody owns.
   */
  readonly cookieApps?: readonly bigint[];
  /**
   * Called once the core has read the switch's flow table and installed the table-miss flow.
   * `flows` are the flows found with this app's cookies (the switch may have kept them through a
   * controller restart or a reconnect: they are state to adopt, not garbage).
   */
  switchReady?(sw: SwitchConnection, flows: FlowStats[]): Promise<void> | void;
  switchGone?(sw: SwitchConnection, reason: string): void;
  /** Returns true when the app took the packet. `frame` is undefined when the bytes did not parse. */
  packetIn?(sw: SwitchConnection, pi: PacketIn, frame: ParsedFrame | undefined): boolean;
  flowRemoved?(sw: SwitchConnection, msg: FlowRemoved): void;
  portStatus?(sw: SwitchConnection, msg: PortStatus): void;
}
