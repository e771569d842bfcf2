/**
 * Public surface of the QUIC codec: pure decoding and encoding, no I/O. The entry point for
 * steering is `parseClientInitial` (one datagram) or `ClientInitialAssembler` (a ClientHello
 * spread over several datagrams).
 */
export * from './result.ts';
export * from './varint.ts';
export * from './header.ts';
export * from './coalesced.ts';
export * from './initial-keys.ts';
export * from './protection.ts';
export * from './frames.ts';
export * from './crypto-stream.ts';
export * from './client-hello.ts';
export * from './retry.ts';
export * from './encoder.ts';
export * from './client-initial.ts';
