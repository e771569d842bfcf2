// A connection's phases as an explicit state machine. Every phase change goes through
// `allowed`; the engine refuses (and logs) anything else, so a stray async completion cannot,
// say, revive a closing connection.
//
//   handshake ──► established ──► held ──► replaying ──► forwarded ◄──► freezing
//       │              │            │  └──────────────────►  ▲  │            │
//       │              └────────────┼───────────────────────►┘  │            └──► held (the move's boundary segment)
//       └──► held                   │                           │
//   any live phase ──► closing ──► closed          (a disconnected switch: held/replaying ──► established, freezing ──► forwarded)
import type { Phase } from './connection.ts';

export const TRANSITIONS: Readonly<Record<Phase, readonly Phase[]>> = {
  // Data may come with the handshake's ACK; an idle handshake is dropped (closed).
  handshake: ['established', 'held', 'closing', 'closed'],
  // The first data segment is held; a client that sends nothing is forwarded without a verdict.
  established: ['held', 'forwarded', 'closing', 'closed'],
  // A verdict: FORWARD installs flows, MIGRATE replays; a lost switch undoes the hold.
  held: ['replaying', 'forwarded', 'established', 'closing', 'closed'],
  // The target answered (spliced) or the move failed: forwarded either way.
  replaying: ['forwarded', 'established', 'closing', 'closed'],
  // A mid-stream move waits for the client's next data segment.
  forwarded: ['freezing', 'closing', 'closed'],
  freezing: ['held', 'forwarded', 'closing', 'closed'],
  closing: ['closed'],
  closed: [],
};

export function allowed(from: Phase, to: Phase): boolean { return TRANSITIONS[from].includes(to); }

/** Phases in which a connection has its flows on the switch. */
export function hasFlows(p: Phase): boolean { return p === 'forwarded' || p === 'closing'; }
