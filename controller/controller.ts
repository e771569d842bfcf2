// The controller core: owns the OpenFlow listener, prepares each switch (clean tables, table-miss
// to the controller, full packets in Packet-Ins) and dispatches switch events to the apps.
import { EventEmitter } from 'node:events';
import { OFPP, OFPTT, OFPCML_NO_BUFFER, flowMod, type OfpMessage } from './openflow/index.ts';
import { parseFrame } from './packet/index.ts';
import { OpenFlowServer } from './datapath/openflow-server.ts';
import { dpidString, type SwitchConnection } from './datapath/switch-connection.ts';
import { LearningSwitch } from './apps/learning-switch.ts';
import { HandoffEngine } from './handoff/handoff-engine.ts';
import { AnalyzerBridge } from './analyzer-bridge.ts';
import { APP_ID, appCookie } from './cookies.ts';
import type { App } from './apps/app.ts';
import type { ControllerConfig } from './config.ts';
import type { Logger } from './log.ts';

const OFPC_FRAG_NORMAL = 0;

/** A frame the controller received (Packet-In) or sent (Packet-Out), for packet capture. */
export interface CaptureRecord { direction: 'in' | 'out'; dpid: string; port: number; frame: Buffer; time: number }

/**
 * Events: 'switch_ready' (sw), 'switch_gone' (sw, reason), 'listening' ({host, port}),
 * 'capture' (CaptureRecord) for every frame in a Packet-In or Packet-Out while someone listens.
 */
export class Controller extends EventEmitter {
  readonly server: OpenFlowServer;
  readonly learning: LearningSwitch;
  readonly engine: HandoffEngine;
  readonly analyzers: AnalyzerBridge;
  private readonly apps: App[] = [];
  readonly stats = { packetIns: 0, unparsedPacketIns: 0, unclaimedPacketIns: 0, appErrors: 0 };

  constructor(readonly config: ControllerConfig, private readonly log: Logger, apps: App[] = []) {
    super();
    this.server = new OpenFlowServer({ ...config.listen, ...config.switch }, log.child({ component: 'openflow' }));
    this.learning = new LearningSwitch(config.learning, log.child({ component: 'learning' }));
    this.engine = new HandoffEngine(config.services, { ...config.handoff, inspectInController: !!config.analyzers.builtin }, this.learning, log.child({ component: 'handoff' }));
    this.analyzers = new AnalyzerBridge(config.analyzers, this.engine, log.child({ component: 'analyzers' }));
    // Migration apps first; the learning switch takes whatever they leave.
    this.apps.push(this.engine, ...apps, this.learning);
    this.server.on('switch_connected', (sw: SwitchConnection) => { this.prepare(sw).catch((e) => this.log.error('switch setup failed', { dpid: sw.describe(), error: (e as Error).message })); });
    this.server.on('switch_disconnected', (sw: SwitchConnection, reason: string) => {
      for (const app of this.apps) this.guard(app, () => app.switchGone?.(sw, reason));
      this.emit('switch_gone', sw, reason);
    });
  }

  async start(): Promise<{ host: string; port: number }> {
    // Alert sockets first: an IDS that starts before them loses its alerts silently.
    await this.analyzers.start();
    const bound = await this.server.listen();
    this.emit('listening', bound);
    return bound;
  }

  async stop(): Promise<void> {
    await this.server.close();
    await this.analyzers.stop();
  }

  get switches(): SwitchConnection[] { return this.server.connected; }

  private async prepare(sw: SwitchConnection): Promise<void> {
    sw.on('message', (msg) => this.dispatch(sw, msg));
    sw.on('packet_out', (msg: Extract<OfpMessage, { type: 'packet_out' }>) => {
      if (msg.data.length > 0) this.emit('capture', { direction: 'out', dpid: sw.describe(), port: msg.inPort, frame: msg.data, time: Date.now() } satisfies CaptureRecord);
    });
    // Start from a known state: whatever an earlier controller (or run) left is gone.
    await sw.transact([
      flowMod({ command: 'delete', tableId: OFPTT.ALL, match: {} }),
      { type: 'set_config', xid: 0, flags: OFPC_FRAG_NORMAL, missSendLen: OFPCML_NO_BUFFER },
      flowMod({
        command: 'add', priority: 0, cookie: appCookie(APP_ID.core),
        instructions: [{ type: 'apply_actions', actions: [{ type: 'output', port: OFPP.CONTROLLER, maxLen: OFPCML_NO_BUFFER }] }],
      }),
    ]);
    for (const app of this.apps) {
      try { await app.switchReady?.(sw); } catch (e) { this.stats.appErrors++; this.log.error('app switch setup failed', { app: app.name, dpid: sw.describe(), error: (e as Error).message }); }
    }
    this.log.info('switch ready', { dpid: dpidString(sw.features!.datapathId) });
    this.emit('switch_ready', sw);
  }

  private dispatch(sw: SwitchConnection, msg: OfpMessage): void {
    switch (msg.type) {
      case 'packet_in': {
        this.stats.packetIns++;
        if (this.listenerCount('capture') > 0) this.emit('capture', { direction: 'in', dpid: sw.describe(), port: msg.match.inPort ?? 0, frame: msg.data, time: Date.now() } satisfies CaptureRecord);
        const parsed = parseFrame(msg.data);
        if (!parsed.ok) {
          // Truncated or garbage frames are logged and dropped; they never reach the apps' state.
          this.stats.unparsedPacketIns++;
          this.log.debug('unparseable packet-in', { dpid: sw.describe(), error: parsed.error.message });
        }
        const frame = parsed.ok ? parsed.value : undefined;
        for (const app of this.apps) {
          let claimed = false;
          this.guard(app, () => { claimed = app.packetIn?.(sw, msg, frame) ?? false; });
          if (claimed) return;
        }
        this.stats.unclaimedPacketIns++;
        return;
      }
      case 'flow_removed': for (const app of this.apps) this.guard(app, () => app.flowRemoved?.(sw, msg)); return;
      case 'port_status': for (const app of this.apps) this.guard(app, () => app.portStatus?.(sw, msg)); return;
      default: this.log.debug('unhandled message', { dpid: sw.describe(), type: msg.type });
    }
  }

  /** An app bug must not take the controller down or stop the other apps. */
  private guard(app: App, fn: () => void): void {
    try { fn(); } catch (e) {
      this.stats.appErrors++;
      this.log.error('app failed', { app: app.name, error: (e as Error).stack ?? String(e) });
    }
  }
}
