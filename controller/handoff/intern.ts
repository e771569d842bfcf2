// Values thousands of connections repeat (a backend's address and port, the TCP states of an
// established connection, the SYN-ACK options a server answers with, a MAC address): one shared,
// frozen copy each, so a connection's record holds references rather than copies. Bounded: a
// cache that fills up starts over (values already handed out stay valid; they are immutable).

export class Interner<T> {
  private readonly values = new Map<string, T>();

  constructor(private readonly keyOf: (v: T) => string, private readonly max = 4096) {}

  /** The shared copy equal to `v` (v itself, frozen, the first time). */
  get(v: T): T {
    const k = this.keyOf(v);
    const known = this.values.get(k);
    if (known !== undefined) return known;
    if (this.values.size >= this.max) this.values.clear();
    if (typeof v === 'object' && v !== null) Object.freeze(v);
    this.values.set(k, v);
    return v;
  }

  get size(): number { return this.values.size; }
}

const keyOfValues = (v: object): string => Object.values(v).join('|');
/** Objects whose keys always come in the same order (built by one constructor): their values are a key. */
export function valueInterner<T extends object>(max?: number): Interner<T> { return new Interner<T>(keyOfValues, max); }
export function stringInterner(max?: number): Interner<string> { return new Interner<string>((s) => s, max); }
