// The operator API: HTTP + WebSocket server, event stream, readable flows.
export { ApiServer, type ApiConfig, type ConnectionFlows, type ReloadHandle } from './api-server.ts';
export { EventHub, type ApiEvent, type SwitchView, type MigrationRecord } from './events.ts';
export { flowView, formatMatch, formatAction, formatInstructions, type FlowView } from './flow-format.ts';
export { HttpError } from './http-util.ts';
