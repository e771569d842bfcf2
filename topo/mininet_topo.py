#!/usr/bin/python3
"""tcp-migrate demo topology for Mininet (Debian's `mininet` package; run with /usr/bin/python3).

One Open vSwitch bridge on the userspace datapath (the patched build from ovs-patch/, running via
`ovs-patch/ovs.sh start`, or Debian's stock OVS for relay mode), a remote controller, and hosts
(with --topo tree, the same hosts on the same port numbers spread over three bridges, see below):

    port 1  server1  10.0.0.1   echo server on :5001 (the service clients connect to)
    port 2  client   10.0.0.2
    port 3  server2  10.0.0.3   echo server on :5001
    port 4  ids      (no IP)    IDS host on the mirror port: --snort runs Snort 3 here (topo/snort.sh, the
                                documented command); or run Suricata here (docs/operations.md)
    port 5  server3  10.0.0.4   only with --add-backend: added at run time, then announced to the
                                controller's API as a new backend of the service

Checksum offload is off on every link (TCULink): the userspace datapath does not complete it.

--topo tree is Mininet's `--topo tree,depth=2` shape (fanout 2): a root bridge SWITCH (datapath id
a1) with two leaves, SWITCHa (a2: server1, ids, server3) and SWITCHb (a3: client, server2); each
leaf's port 9 leads to the root's port 1 or 2. The controller needs "fabric": true (docs/fabric.md);
the fabric forwards between the bridges, while the TCP handoff still works per switch (client and
servers on one bridge), so the migration story itself needs the default shape for now.

Unlike `mn`, this script never runs Mininet's global cleanup (which deletes every OVS bridge and
kills processes by name). On exit, Ctrl-C, SIGTERM, SIGHUP or an error it removes exactly what it
made: the processes in its hosts (echo servers, Snort, anything started from the CLI), the hosts'
namespaces, its bridges and their veth links. It refuses to start if one of its bridges or links
already exists.

Usage:
    sudo /usr/bin/python3 topo/mininet_topo.py [--controller 127.0.0.1:6653] [--cli] [--topo single|tree]
        [--add-backend SECONDS] [--api http://127.0.0.1:6680 --token TOKEN] [--snort [LOGDIR]]

With --snort, Snort 3 reads snort-rules/migrate.rules (exported for Snort 3 into LOGDIR, default
/run/tcp-migrate-snort) and sends alerts to LOGDIR/snort_alert: give the controller
"analyzers": {"snort": {"logDir": "LOGDIR"}}. After editing the rules:
    mininet> sh bash topo/snort.sh reload /run/tcp-migrate-snort
"""
import argparse
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
import urllib.request

from mininet.cli import CLI
from mininet.link import TCULink
from mininet.log import error, info, setLogLevel
from mininet.net import Mininet
from mininet.node import OVSSwitch, RemoteController

HERE = os.path.dirname(os.path.abspath(__file__))
ECHO = os.path.join(HERE, 'apps', 'echo-server.mjs')
SNORT_SH = os.path.join(HERE, 'snort.sh')
SERVICE_PORT = 5001
# --topo tree: the leaf each host hangs off (0: SWITCHa, 1: SWITCHb), and the leaves' uplink port.
TREE_LEAF = {'server1': 0, 'ids': 0, 'server3': 0, 'client': 1, 'server2': 1}
TREE_UPLINK = 9


def parse_args():
    p = argparse.ArgumentParser(description='tcp-migrate Mininet topology')
    p.add_argument('--controller', default='127.0.0.1:6653', help='controller address:port (default %(default)s)')
    p.add_argument('--switch', default='tmsw1', help='bridge name (default %(default)s; must not exist); '
                   'with --topo tree the root, the leaves get "a" and "b" appended')
    p.add_argument('--topo', choices=['single', 'tree'], default='single',
                   help='one bridge (default), or a root and two leaves (Mininet tree,depth=2)')
    p.add_argument('--cli', action='store_true', help='open the Mininet CLI (else wait for Ctrl-C)')
    p.add_argument('--add-backend', type=float, metavar='SECONDS',
                   help='after SECONDS, add server3 (10.0.0.4) and register it with the controller API')
    p.add_argument('--api', default=os.environ.get('TCP_MIGRATE_API', 'http://127.0.0.1:6680'))
    p.add_argument('--token', default=os.environ.get('TCP_MIGRATE_TOKEN', ''))
    p.add_argument('--service', default='echo', help='service to add server3 to (default %(default)s)')
    p.add_argument('--snort', nargs='?', const='/run/tcp-migrate-snort', metavar='LOGDIR',
                   help='run Snort 3 on the IDS host; alerts to LOGDIR/snort_alert (default %(const)s)')
    return p.parse_args()


class Stop(BaseException):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C (KeyboardInterrupt), so that cleanup runs."""


def on_signal(signum, _frame):
    raise Stop(signal.Signals(signum).name)


def switch_names(args):
    """The bridges this run makes: the root first."""
    if args.topo == 'tree':
        return [args.switch, args.switch + 'a', args.switch + 'b']
    return [args.switch]


class Made:
    """What this run created, so that cleanup removes that and nothing else."""

    def __init__(self, switches):
        self.switches = switches
        self.procs = []        # daemons started in hosts (each leads its own session: mnexec -d)
        self.netns = set()     # the hosts' network namespaces, as /proc/<pid>/ns/net links

    def host(self, h):
        try:
            ns = os.readlink(f'/proc/{h.pid}/ns/net')
        except OSError:
            return
        # Never this script's own namespace: cleanup kills every process in these.
        if ns != os.readlink('/proc/self/ns/net'):
            self.netns.add(ns)


def root_links(switch):
    """This switch's veth ends in the root namespace (Mininet names them <switch>-ethN)."""
    out = subprocess.run(['ip', '-o', 'link', 'show'], capture_output=True, text=True).stdout
    names = (m.group(1) for m in re.finditer(r'^\d+: ([^:@\s]+)', out, re.M))
    return [n for n in names if re.fullmatch(re.escape(switch) + r'-eth\d+', n)]


def refuse_existing(switch):
    """Mininet deletes a bridge or interfaces of the same name before creating its own: never let it."""
    if subprocess.run(['ovs-vsctl', '-t', '5', 'br-exists', switch]).returncode == 0:
        sys.exit(f'mininet_topo.py: bridge {switch} exists; use another --switch (or remove it: ovs-vsctl del-br {switch})')
    links = root_links(switch)
    if links:
        sys.exit(f'mininet_topo.py: interfaces {" ".join(links)} exist; use another --switch (or remove them: ip link del <name>)')


def start_echo(host, name, made):
    """An echo server in the host; returns once it listens, so "topology up" means the service answers."""
    proc = host.popen(['node', ECHO, '--name', name, '--port', str(SERVICE_PORT)])
    made.procs.append(proc)
    # mnexec -d forks before it execs node: Popen returning says nothing about the server yet.
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline().decode(errors='replace') if ready else ''
    if '"listening"' not in line:
        err = proc.stderr.read().decode(errors='replace') if proc.poll() is not None else ''
        raise RuntimeError(f'echo server {name} did not start listening within 30 s: {(line + err).strip() or "no output"}')
    return proc


def start_snort(host, logdir, made):
    """Snort 3 on the IDS host's mirror-port interface; returns once its packet thread runs."""
    os.makedirs(logdir, exist_ok=True)
    log = os.path.join(logdir, 'snort.log')
    if os.path.exists(log):
        os.unlink(log)
    iface = host.defaultIntf().name
    proc = host.popen(['bash', SNORT_SH, 'run', logdir, iface])
    made.procs.append(proc)
    for _ in range(600):
        if os.path.exists(log) and any(line.startswith('++ [0] ' + iface) for line in open(log)):
            info(f'*** Snort 3 on {iface}: alerts to {logdir}/snort_alert (log {log}); controller config: '
                 f'"analyzers": {{"snort": {{"logDir": "{logdir}"}}}}\n')
            return
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    tail = open(log).read().splitlines()[-5:] if os.path.exists(log) else []
    raise RuntimeError('Snort did not start: ' + ' | '.join(tail))


def register_backend(args):
    body = json.dumps({'name': 'server3', 'address': '10.0.0.4', 'port': SERVICE_PORT}).encode()
    req = urllib.request.Request(f'{args.api}/api/services/{args.service}/backends', data=body, method='POST',
                                 headers={'Content-Type': 'application/json', 'Authorization': f'Bearer {args.token}'})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            info(f'*** controller accepted server3: {r.read().decode()}\n')
    except Exception as e:  # the topology stays usable; say what went wrong
        info(f'*** registering server3 with {args.api} failed: {e}\n')


def add_server3(net, args, made):
    sw = net.get(switch_names(args)[1] if args.topo == 'tree' else args.switch)
    h = net.addHost('server3', ip='10.0.0.4/24', mac='02:00:00:00:00:04')
    made.host(h)
    link = net.addLink(h, sw, port2=5, cls=TCULink)
    sw.attach(link.intf2)
    h.configDefault()
    start_echo(h, 'server3', made)
    register_backend(args)


def alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except OSError:
        return False


def stop_groups(pgids, grace=3.0):
    """SIGTERM to each process group, SIGKILL to what is left after `grace` seconds."""
    for g in pgids:
        try:
            os.killpg(g, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + grace
    while any(alive(g) for g in pgids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for g in pgids:
        try:
            os.killpg(g, signal.SIGKILL)
        except OSError:
            pass


def pids_in(netns):
    """Processes whose network namespace is one of `netns`."""
    found = []
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                if os.readlink(f'/proc/{d}/ns/net') in netns:
                    found.append(int(d))
            except OSError:
                pass
    return found


def cleanup(net, made):
    """Removes what this run made; every step runs even when an earlier one failed."""
    for h in net.hosts:
        made.host(h)
    # Daemons started in hosts survive net.stop(): end them, with their children, first.
    stop_groups([p.pid for p in made.procs])
    for p in made.procs:
        try:
            p.wait(timeout=1)
        except Exception:
            pass
    try:
        net.stop()
    except BaseException as e:  # noqa: BLE001 - go on with what net.stop() did not get to
        error(f'*** net.stop() failed: {e!r}\n')
    # Anything still in a host's namespace (started from the CLI, or left by a failed stop) keeps
    # the namespace, and with it the host's veth, alive.
    for _ in range(2):
        left = pids_in(made.netns)
        if not left:
            break
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        deadline = time.monotonic() + 3
        while pids_in(made.netns) and time.monotonic() < deadline:
            time.sleep(0.05)
    # The bridges and links, should net.stop() have missed them (refuse_existing proved they are ours).
    for switch in made.switches:
        subprocess.run(['ovs-vsctl', '-t', '10', '--if-exists', 'del-br', switch])
        for name in root_links(switch):
            subprocess.run(['ip', 'link', 'del', name], stderr=subprocess.DEVNULL)


def add_switches(net, args):
    """The bridges; returns the one each host hangs off, by host name."""
    def switch(name, dpid):
        return net.addSwitch(name, cls=OVSSwitch, datapath='user', protocols='OpenFlow13', failMode='secure', dpid=dpid)
    names = switch_names(args)
    if args.topo == 'single':
        sw = switch(names[0], '00000000000000a1')
        return {h: sw for h in TREE_LEAF}
    root = switch(names[0], '00000000000000a1')
    leaves = [switch(names[1], '00000000000000a2'), switch(names[2], '00000000000000a3')]
    for i, leaf in enumerate(leaves):
        net.addLink(leaf, root, port1=TREE_UPLINK, port2=i + 1)
    return {h: leaves[leaf] for h, leaf in TREE_LEAF.items()}


def run(net, args, made):
    host, port = args.controller.rsplit(':', 1)
    net.addController('c0', controller=RemoteController, ip=host, port=int(port))
    switch_of = add_switches(net, args)
    hosts = [('server1', '10.0.0.1/24', 1), ('client', '10.0.0.2/24', 2), ('server2', '10.0.0.3/24', 3)]
    for name, ip, ofport in hosts:
        h = net.addHost(name, ip=ip, mac='02:00:00:00:00:%02x' % int(ip.split('.')[3].split('/')[0]))
        made.host(h)
        net.addLink(h, switch_of[name], port2=ofport)
    ids = net.addHost('ids', ip=None)
    made.host(ids)
    net.addLink(ids, switch_of['ids'], port2=4)
    net.build()
    net.start()
    for name in ('server1', 'server2'):
        start_echo(net.get(name), name, made)
    if args.snort:
        start_snort(net.get('ids'), args.snort, made)
    info('*** topology up: client 10.0.0.2 -> service 10.0.0.1:%d (server1), server2 10.0.0.3, IDS on port 4\n' % SERVICE_PORT)
    if args.topo == 'tree':
        names = switch_names(args)
        info(f'*** tree: {names[0]} (a1) with leaves {names[1]} (a2: server1, ids) and {names[2]} (a3: client, server2); '
             'the controller needs "fabric": true\n')
    if args.add_backend is not None:
        time.sleep(args.add_backend)
        add_server3(net, args, made)
    if args.cli:
        CLI(net)
    else:
        info('*** Ctrl-C to stop\n')
        while True:
            time.sleep(3600)


def main():
    args = parse_args()
    if os.geteuid() != 0:
        sys.exit('mininet_topo.py: run as root')
    setLogLevel('info')
    # Without handlers SIGTERM and SIGHUP would end the process at once, leaving everything behind.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    switches = switch_names(args)
    for switch in switches:
        # Mininet names a bridge's interfaces <bridge>-eth<port>; Linux allows 15 characters.
        if len(f'{switch}-eth{TREE_UPLINK}') > 15:
            sys.exit(f'mininet_topo.py: bridge name {switch} is too long for its interface names (<= 10 characters)')
        refuse_existing(switch)
    net = Mininet(controller=None, link=TCULink, build=False, autoSetMacs=False)
    made = Made(switches)
    try:
        run(net, args, made)
    except (KeyboardInterrupt, Stop) as e:
        info(f'*** stopping ({e or "SIGINT"})\n')
    finally:
        # A second Ctrl-C or SIGTERM must not cut the cleanup short.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        cleanup(net, made)
        info('*** removed everything this run made\n')


if __name__ == '__main__':
    main()
