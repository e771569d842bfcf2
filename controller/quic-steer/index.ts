/** QUIC services: config, flow plan, held Initials, connection-ID steering and the App (docs/quic.md, "QUIC services", "Connection-ID steering"). */
export * from './service-config.ts';
export * from './flow-plan.ts';
export * from './held-initial.ts';
export * from './cid-steer.ts';
export * from './quic-steer-app.ts';
