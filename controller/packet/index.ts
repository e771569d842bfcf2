/** Public surface of the packet codec. */
export * from './result.ts';
export * from './addr.ts';
export * from './seq.ts';
export * from './checksum.ts';
export * from './ethernet.ts';
export * from './arp.ts';
export * from './ipv4.ts';
export * from './tcp-options.ts';
export * from './tcp.ts';
export * from './udp.ts';
export * from './icmp.ts';
export * from './frame.ts';
export * from './locate.ts';
export * from './rewrite.ts';
export * from './verify.ts';
export * from './pcap.ts';
