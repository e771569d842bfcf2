// Remembers the broadcasts a switch flooded a moment ago. Along a spanning tree a broadcast
// reaches each switch once; the same frame back at the same switch within a fraction of a second
// means a loop the topology does not know of yet (links not yet discovered, or a link that is not
// reported), so the copy is dropped there and a storm cannot start. Hosts repeat a broadcast
// (ARP, DHCP) a second or more apart, well outside the window.
import { createHash } from 'node:crypto';

export class FloodGuard {
  private readonly seen = new Map<string, number>();

  constructor(private readonly windowMs = 500, private readonly maxEntries = 8192) {}

  /** True the first time a frame is offered at a switch within the window; false for a repeat. */
  admit(dpid: string, frame: Buffer, now: number): boolean {
    const key = dpid + createHash('sha1').update(frame).digest('base64');
    const until = this.seen.get(key);
    if (until !== undefined && until > now) return false;
    if (this.seen.size >= this.maxEntries) this.prune(now);
    // Still full of live entries (a flood of distinct broadcasts): forget the oldest.
    if (this.seen.size >= this.maxEntries) this.seen.delete(this.seen.keys().next().value!);
    this.seen.delete(key);
    this.seen.set(key, now + this.windowMs);
    return true;
  }

  prune(now: number): void { for (const [k, until] of this.seen) if (until <= now) this.seen.delete(k); }

  get size(): number { return this.seen.size; }
}
