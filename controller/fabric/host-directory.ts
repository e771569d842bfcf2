// What the handoff engine and the API read of the forwarding app: where hosts are (IP → MAC,
// switch, port; the port towards a MAC from a switch; a 'host' event when one appears or moves).
// The learning switch keeps it on one switch; the fabric app keeps the same across switches.
import type { EventEmitter } from 'node:events';
import type { LearningSwitch } from '../apps/learning-switch.ts';

export type HostDirectory = Pick<LearningSwitch, 'hosts' | 'portForMac' | 'learnHost'> & EventEmitter;
