// Hosts (tests and the demo): one network namespace per host, joined to the switch by a veth pair.
// Names carry a per-run random id with the 'tmt' prefix so parallel runs never collide and
// test/cleanup.sh can remove leftovers of a crashed run without touching anything else.
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { run, start, stop, type RunOptions, type RunResult } from './exec.ts';

export class Host {
  readonly children = new Set<ChildProcess>();
  /** The host's IPv6 address, when it was given one (addHost's `ipv6`). */
  ip6?: string;
  constructor(readonly name: string, readonly ns: string, readonly ip: string, readonly mac: string, readonly peer: string) {}

  exec(argv: string[], opts: RunOptions = {}): Promise<RunResult> { return run('ip', ['netns', 'exec', this.ns, ...argv], opts); }

  /** A background process inside the namespace; killed by TestNet.destroy() if still running. */
  spawn(argv: string[], opts: { stdin?: 'pipe' | 'ignore' } = {}): ChildProcess {
    const child = start('ip', ['netns', 'exec', this.ns, ...argv], { stdio: [opts.stdin ?? 'ignore', 'pipe', 'pipe'] });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Drops `percent` % of the TCP segments this host receives (nftables numgen; netem is not in this kernel). */
  async addLoss(percent: number): Promise<void> {
    await this.exec(['nft', 'add', 'table', 'inet', 'tmtloss']);
    await this.exec(['nft', 'add', 'chain', 'inet', 'tmtloss', 'in', '{ type filter hook input priority 0; }']);
    await this.exec(['nft', 'add', 'rule', 'inet', 'tmtloss', 'in', 'meta', 'l4proto', 'tcp', 'numgen', 'random', 'mod', '1000', 'lt', String(Math.round(percent * 10)), 'counter', 'drop']);
  }

  async removeLoss(): Promise<void> {
    await this.exec(['nft', 'delete', 'table', 'inet', 'tmtloss'], { allowFail: true });
  }

  async lossDrops(): Promise<number> {
    const r = await this.exec(['nft', 'list', 'table', 'inet', 'tmtloss'], { allowFail: true });
    const m = /counter packets (\d+)/.exec(r.stdout);
    return m ? Number(m[1]) : 0;
  }
}

export class TestNet {
  readonly hosts: Host[] = [];
  private constructor(readonly id: string) {}

  static create(): TestNet { return new TestNet('tmt' + randomBytes(2).toString('hex')); }

  /**
   * cidr like '10.0.0.1/24'. The switch-side interface is `host.peer`. With `ipv6` (a cidr like
   * 'fd00::1/64') the host is dual-stack; without, IPv6 is off in it.
   */
  async addHost(name: string, cidr: string, opts: { mac?: string; ipv6?: string } = {}): Promise<Host> {
    const n = this.hosts.length + 1;
    const ns = `${this.id}-${name}`;
    const peer = `${this.id}-${n}`;
    const tmp = `${this.id}-${n}h`;
    const mac = opts.mac ?? `02:${this.id.slice(3, 5)}:${this.id.slice(5, 7)}:00:00:${n.toString(16).padStart(2, '0')}`;
    const host = new Host(name, ns, cidr.split('/')[0], mac, peer);
    this.hosts.push(host);
    await run('ip', ['netns', 'add', ns]);
    await run('ip', ['link', 'add', peer, 'type', 'veth', 'peer', 'name', tmp]);
    await run('ip', ['link', 'set', tmp, 'netns', ns]);
    const inNs = (...a: string[]) => run('ip', ['netns', 'exec', ns, ...a]);
    await inNs('ip', 'link', 'set', tmp, 'name', 'eth0');
    await inNs('ip', 'link', 'set', 'eth0', 'address', mac);
    // The switch-side end never speaks IPv6 itself (no router solicitations or MLD from the root namespace).
    await run('sysctl', ['-qw', `net.ipv6.conf.${peer}.disable_ipv6=1`]);
    if (opts.ipv6) {
      // Usable at once (no duplicate address detection), and no router solicitations to wait for.
      for (const k of ['accept_dad=0', 'router_solicitations=0', 'accept_ra=0']) await inNs('sysctl', '-qw', `net.ipv6.conf.eth0.${k}`);
      await inNs('ip', '-6', 'addr', 'add', opts.ipv6, 'dev', 'eth0', 'nodad');
      host.ip6 = opts.ipv6.split('/')[0];
    } else {
      // No IPv6 chatter (router solicitations, MLD) in the tests' packet counts.
      await inNs('sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1');
    }
    await inNs('ip', 'addr', 'add', cidr, 'dev', 'eth0');
    await inNs('ip', 'link', 'set', 'eth0', 'up');
    await inNs('ip', 'link', 'set', 'lo', 'up');
    // The userspace datapath does not complete TX checksum offload (DESIGN.md §6).
    await inNs('ethtool', '-K', 'eth0', 'tx', 'off');
    await run('ip', ['link', 'set', peer, 'up']);
    return host;
  }

  async destroy(): Promise<void> {
    for (const h of this.hosts) {
      await Promise.all([...h.children].map((c) => stop(c, 1000)));
      await run('ip', ['netns', 'pids', h.ns], { allowFail: true }).then(async (r) => {
        for (const pid of r.stdout.split(/\s+/).filter(Boolean)) { try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ } }
      });
      await run('ip', ['netns', 'del', h.ns], { allowFail: true });
      await run('ip', ['link', 'del', h.peer], { allowFail: true });
    }
    this.hosts.length = 0;
  }
}
