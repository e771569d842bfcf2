/** QUIC services: config, flow plan, held Initials and the App (docs/quic.md, "QUIC services"). */
export * from './service-config.ts';
export * from './flow-plan.ts';
export * from './held-initial.ts';
export * from './quic-steer-app.ts';
