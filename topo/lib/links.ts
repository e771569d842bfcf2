// Links between Open vSwitch bridges (a fabric in one machine): a veth pair with one end on each
// bridge, checksum offload off (the userspace datapath does not complete it, DESIGN.md §6) and no
// IPv6 of its own (no router solicitations or MLD from the root namespace on the link).
import { run } from './exec.ts';
import type { Ovs } from './ovs.ts';

/** Joins `a`:`portA` and `b`:`portB` with a veth pair named `name`a/`name`b; returns the a-side name (to take the link down, or delete it). */
export async function linkBridges(ovs: Ovs, name: string, a: string, portA: number, b: string, portB: number): Promise<string> {
  const ends = [`${name}a`, `${name}b`];
  await run('ip', ['link', 'add', ends[0]!, 'type', 'veth', 'peer', 'name', ends[1]!]);
  for (const end of ends) {
    await run('sysctl', ['-qw', `net.ipv6.conf.${end}.disable_ipv6=1`]);
    await run('ethtool', ['-K', end, 'tx', 'off']);
    await run('ip', ['link', 'set', end, 'up']);
  }
  await ovs.addPort(a, ends[0]!, portA);
  await ovs.addPort(b, ends[1]!, portB);
  return ends[0]!;
}
