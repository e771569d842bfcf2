/** Public surface of the traffic analyzers (docs/analyzers.md). */
export * from './types.ts';
export * from './snort-alertpkt.ts';
export * from './snort-unixsock.ts';
export * from './suricata-eve.ts';
export * from './rules.ts';
export * from './builtin-matcher.ts';
export { loadNative, nativeAvailable, sendDgram, prepareSocketPath, UnixDgramReceiver } from './unix-dgram.ts';
export * from './health.ts';
export * from './no-match.ts';
