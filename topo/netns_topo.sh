#!/usr/bin/env bash
# The demo topology without Mininet: network namespaces joined by veth pairs to one Open vSwitch
# bridge on the userspace datapath, with the same addresses and switch ports as topo/mininet_topo.py:
#
#   port 1 server1 10.0.0.1 | port 2 client 10.0.0.2 | port 3 server2 10.0.0.3 | port 4 ids | port 5 server3 10.0.0.4
#
# Uses whichever ovs-vsctl is first on PATH (/usr/local/bin: the patched build started by
# `ovs-patch/ovs.sh start`). Every name it creates starts with "tmn", and `down` removes exactly those.
#
# Usage: topo/netns_topo.sh up [--controller tcp:127.0.0.1:6653] [--no-echo] [--snort]
#        topo/netns_topo.sh add-backend     (server3, port 5; then register it with the controller API)
#        topo/netns_topo.sh snort-reload    (after editing snort-rules/migrate.rules: export + SIGHUP)
#        topo/netns_topo.sh down
#        topo/netns_topo.sh exec <host> <command...>   e.g. exec client nc 10.0.0.1 5001
#
# --snort starts Snort 3 in the IDS host on its eth0 (topo/snort.sh: the documented command),
# alerts to /run/tcp-migrate-netns/snort/snort_alert. Controller config:
#   "analyzers": {"snort": {"logDir": "/run/tcp-migrate-netns/snort"}}   (start order does not matter)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
BR=tmnbr0
PIDDIR=/run/tcp-migrate-netns
SNORT_DIR=$PIDDIR/snort
declare -A IP=([server1]=10.0.0.1 [client]=10.0.0.2 [server2]=10.0.0.3 [ids]= [server3]=10.0.0.4)
declare -A PORT=([server1]=1 [client]=2 [server2]=3 [ids]=4 [server3]=5)

ns() { echo "tmn-$1"; }

add_host() {
  local h=$1 port=${PORT[$1]} ip=${IP[$1]}
  local n; n=$(ns "$h")
  ip netns add "$n"
  ip link add "tmn-$port" type veth peer name "tmn-$port-h"
  ip link set "tmn-$port-h" netns "$n"
  ip -n "$n" link set "tmn-$port-h" name eth0
  ip -n "$n" link set eth0 address "02:00:00:00:00:0$port"
  ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  [ -n "$ip" ] && ip -n "$n" addr add "$ip/24" dev eth0
  ip -n "$n" link set eth0 up
  ip -n "$n" link set lo up
  # The userspace datapath does not complete TX checksum offload (docs/operations.md).
  ip netns exec "$n" ethtool -K eth0 tx off >/dev/null
  ip link set "tmn-$port" up
  ovs-vsctl add-port "$BR" "tmn-$port" -- set interface "tmn-$port" ofport_request="$port"
}

start_echo() {
  mkdir -p "$PIDDIR"
  ip netns exec "$(ns "$1")" node "$HERE/apps/echo-server.mjs" --name "$1" --port 5001 >"$PIDDIR/$1.log" 2>&1 &
  echo $! >"$PIDDIR/$1.pid"
}

up() {
  local controller=tcp:127.0.0.1:6653 echo=1 snort=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --controller) controller=$2; shift 2 ;;
      --no-echo) echo=0; shift ;;
      --snort) snort=1; shift ;;
      *) echo "unknown option $1" >&2; exit 2 ;;
    esac
  done
  if ovs-vsctl br-exists "$BR" 2>/dev/null; then echo "$BR exists: run '$0 down' first" >&2; exit 1; fi
  trap 'echo "setup failed; cleaning up" >&2; down' ERR
  ovs-vsctl add-br "$BR" -- set bridge "$BR" datapath_type=netdev protocols=OpenFlow13 fail_mode=secure \
    other-config:datapath-id=00000000000000a1 -- set-controller "$BR" "$controller"
  for h in server1 client server2 ids; do add_host "$h"; done
  if [ "$echo" = 1 ]; then start_echo server1; start_echo server2; fi
  if [ "$snort" = 1 ]; then start_snort; fi
  trap - ERR
  echo "up: client 10.0.0.2 -> service 10.0.0.1:5001 (server1), server2 10.0.0.3, IDS on port 4; bridge $BR -> $controller"
}

start_snort() {
  mkdir -p "$SNORT_DIR"
  rm -f "$SNORT_DIR/snort.log"
  # Its own session: closing this terminal must not SIGHUP it (SIGHUP makes Snort reload).
  setsid ip netns exec "$(ns ids)" bash "$HERE/snort.sh" run "$SNORT_DIR" eth0 </dev/null &
  # Ready when its packet thread captures: "++ [0] eth0" in its log.
  for _ in $(seq 1 300); do
    grep -q '^++ \[0\] eth0' "$SNORT_DIR/snort.log" 2>/dev/null && { echo "snort: running in ids, alerts to $SNORT_DIR/snort_alert (log $SNORT_DIR/snort.log)"; return 0; }
    kill -0 $! 2>/dev/null || break
    sleep 0.1
  done
  echo "snort did not start, see $SNORT_DIR/snort.log:" >&2; tail -n 5 "$SNORT_DIR/snort.log" >&2; return 1
}

add_backend() {
  add_host server3
  start_echo server3
  echo "server3 10.0.0.4 on port 5. Register it with the controller: POST /api/services/<service>/backends (docs/api.md)"
}

down() {
  if [ -d "$SNORT_DIR" ]; then bash "$HERE/snort.sh" stop "$SNORT_DIR"; fi
  for f in "$PIDDIR"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; rm -f "$f"; done
  for h in "${!PORT[@]}"; do
    local n; n=$(ns "$h")
    if ip netns list | grep -qw "$n"; then
      for pid in $(ip netns pids "$n"); do kill -9 "$pid" 2>/dev/null || true; done
      ip netns del "$n"
    fi
    ip link del "tmn-${PORT[$h]}" 2>/dev/null || true
  done
  ovs-vsctl --if-exists del-br "$BR"
  echo "down"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  add-backend) add_backend ;;
  snort-reload) exec bash "$HERE/snort.sh" reload "$SNORT_DIR" ;;
  down) down ;;
  exec) h=$2; shift 2; exec ip netns exec "$(ns "$h")" "$@" ;;
  *) sed -n '2,18p' "$0"; exit 2 ;;
esac
