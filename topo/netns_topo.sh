#!/usr/bin/env bash
# The demo topology without Mininet: network namespaces joined by veth pairs to Open vSwitch
# bridges on the userspace datapath, with the same addresses and switch ports as topo/mininet_topo.py:
#
#   port 1 server1 10.0.0.1 | port 2 client 10.0.0.2 | port 3 server2 10.0.0.3 | port 4 ids | port 5 server3 10.0.0.4
#
# One bridge (tmnbr0, datapath id a1) by default. With --switches 3, three bridges in a triangle
# (tmnbr0/1/2, datapath ids a1/a2/a3; on each, port 11 leads to the next bridge and port 12 to the
# previous one) and the hosts spread over them, on the same port numbers as above:
#
#   tmnbr0 (a1): server1, ids     tmnbr1 (a2): client, server3     tmnbr2 (a3): server2
#
# The controller then needs "fabric": true (docs/fabric.md). The fabric forwards between the
# switches; the TCP handoff still works per switch (client and servers on one switch), so the
# migration story itself needs the one-switch shape for now.
#
# --vlans puts the hosts in two VLANs: server1, client, ids and server3 in VLAN 10, server2 in
# VLAN 20 (so the client reaches server1 across the links, never server2). The bridges stay plain
# OpenFlow switches; the controller does the tagging, and needs the access ports in its config:
# `up` prints the "fabric" section and writes it to /run/tcp-migrate-netns/fabric-vlans.json.
# With --switches 3 the links carry VLAN 10 tagged between tmnbr0 and tmnbr1 (docs/fabric.md).
#
# Uses whichever ovs-vsctl is first on PATH (/usr/local/bin: the patched build started by
# `ovs-patch/ovs.sh start`). Every name it creates starts with "tmn", and `down` removes exactly those.
#
# Usage: topo/netns_topo.sh up [--controller tcp:127.0.0.1:6653] [--no-echo] [--snort] [--switches 1|3] [--vlans]
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
# How many bridges `up` made (add-backend puts server3 on the right one).
SWITCHES_FILE=$PIDDIR/switches
declare -A IP=([server1]=10.0.0.1 [client]=10.0.0.2 [server2]=10.0.0.3 [ids]= [server3]=10.0.0.4)
declare -A PORT=([server1]=1 [client]=2 [server2]=3 [ids]=4 [server3]=5)
# The bridge of each host with --switches 3.
declare -A SWITCH_OF=([server1]=0 [client]=1 [server2]=2 [ids]=0 [server3]=1)
# The VLAN of each host with --vlans.
declare -A VLAN_OF=([server1]=10 [client]=10 [ids]=10 [server3]=10 [server2]=20)
VLANS_FILE=$PIDDIR/fabric-vlans.json
FABRIC_BRIDGES=(tmnbr0 tmnbr1 tmnbr2)
FABRIC_PORT_NEXT=11
FABRIC_PORT_PREV=12

ns() { echo "tmn-$1"; }

switches() { cat "$SWITCHES_FILE" 2>/dev/null || echo 1; }

bridge_of() {
  if [ "$(switches)" = 3 ]; then echo "tmnbr${SWITCH_OF[$1]}"; else echo "$BR"; fi
}

# The datapath id of a host's bridge (tmnbrN is a(N+1); the single bridge is a1).
dpid_of() {
  if [ "$(switches)" = 3 ]; then echo "00000000000000a$((SWITCH_OF[$1] + 1))"; else echo 00000000000000a1; fi
}

# The controller's "fabric" section for --vlans: every host's port an access port of its VLAN.
write_vlan_config() {
  local h entries=()
  for h in server1 client ids server3 server2; do
    entries+=("      { \"port\": \"$(dpid_of "$h"):${PORT[$h]}\", \"vlan\": ${VLAN_OF[$h]} }")
  done
  {
    echo '"fabric": {'
    echo '  "vlans": {'
    echo '    "access": ['
    local IFS=$'\n'
    echo "${entries[*]}" | sed '$!s/$/,/'
    echo '    ]'
    echo '  }'
    echo '}'
  } >"$VLANS_FILE"
}

add_bridge() {
  local br=$1 dpid=$2 controller=$3
  ovs-vsctl add-br "$br" -- set bridge "$br" datapath_type=netdev protocols=OpenFlow13 fail_mode=secure \
    other-config:datapath-id="$dpid" -- set-controller "$br" "$controller"
}

# Bridge i to bridge i+1 (mod 3) by a veth pair tmn-s<i><j> / tmn-s<j><i>: port 11 on i, port 12 on j.
add_fabric_link() {
  local i=$1 j=$2
  local a="tmn-s$i$j" b="tmn-s$j$i"
  ip link add "$a" type veth peer name "$b"
  for end in "$a" "$b"; do
    sysctl -qw "net.ipv6.conf.$end.disable_ipv6=1"
    # The userspace datapath does not complete TX checksum offload (docs/operations.md).
    ethtool -K "$end" tx off >/dev/null
    ip link set "$end" up
  done
  ovs-vsctl add-port "${FABRIC_BRIDGES[$i]}" "$a" -- set interface "$a" ofport_request=$FABRIC_PORT_NEXT
  ovs-vsctl add-port "${FABRIC_BRIDGES[$j]}" "$b" -- set interface "$b" ofport_request=$FABRIC_PORT_PREV
}

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
  ovs-vsctl add-port "$(bridge_of "$h")" "tmn-$port" -- set interface "tmn-$port" ofport_request="$port"
}

start_echo() {
  mkdir -p "$PIDDIR"
  ip netns exec "$(ns "$1")" node "$HERE/apps/echo-server.mjs" --name "$1" --port 5001 >"$PIDDIR/$1.log" 2>&1 &
  echo $! >"$PIDDIR/$1.pid"
}

up() {
  local controller=tcp:127.0.0.1:6653 echo=1 snort=0 n=1 vlans=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --controller) controller=$2; shift 2 ;;
      --no-echo) echo=0; shift ;;
      --snort) snort=1; shift ;;
      --switches) n=$2; shift 2 ;;
      --vlans) vlans=1; shift ;;
      *) echo "unknown option $1" >&2; exit 2 ;;
    esac
  done
  if [ "$n" != 1 ] && [ "$n" != 3 ]; then echo "--switches takes 1 or 3" >&2; exit 2; fi
  for br in "$BR" "${FABRIC_BRIDGES[@]}"; do
    if ovs-vsctl br-exists "$br" 2>/dev/null; then echo "$br exists: run '$0 down' first" >&2; exit 1; fi
  done
  trap 'echo "setup failed; cleaning up" >&2; down' ERR
  mkdir -p "$PIDDIR"
  echo "$n" >"$SWITCHES_FILE"
  if [ "$n" = 3 ]; then
    for i in 0 1 2; do add_bridge "${FABRIC_BRIDGES[$i]}" "00000000000000a$((i + 1))" "$controller"; done
    add_fabric_link 0 1; add_fabric_link 1 2; add_fabric_link 2 0
  else
    add_bridge "$BR" 00000000000000a1 "$controller"
  fi
  for h in server1 client server2 ids; do add_host "$h"; done
  if [ "$echo" = 1 ]; then start_echo server1; start_echo server2; fi
  if [ "$snort" = 1 ]; then start_snort; fi
  if [ "$vlans" = 1 ]; then write_vlan_config; fi
  trap - ERR
  if [ "$n" = 3 ]; then
    echo "up: triangle tmnbr0 (a1: server1 10.0.0.1, ids) - tmnbr1 (a2: client 10.0.0.2) - tmnbr2 (a3: server2 10.0.0.3), ports 11/12 between bridges -> $controller"
    [ "$vlans" = 1 ] || echo "    the controller needs \"fabric\": true (docs/fabric.md)"
  else
    echo "up: client 10.0.0.2 -> service 10.0.0.1:5001 (server1), server2 10.0.0.3, IDS on port 4; bridge $BR -> $controller"
  fi
  if [ "$vlans" = 1 ]; then
    echo "    VLAN 10: server1, client, ids, server3; VLAN 20: server2. The controller's config needs (also in $VLANS_FILE):"
    sed 's/^/      /' "$VLANS_FILE"
  fi
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
  echo "server3 10.0.0.4 on port 5 of $(bridge_of server3). Register it with the controller: POST /api/services/<service>/backends (docs/api.md)"
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
  for br in "$BR" "${FABRIC_BRIDGES[@]}"; do ovs-vsctl --if-exists del-br "$br"; done
  for l in tmn-s01 tmn-s12 tmn-s20; do ip link del "$l" 2>/dev/null || true; done
  rm -f "$SWITCHES_FILE" "$VLANS_FILE"
  echo "down"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  add-backend) add_backend ;;
  snort-reload) exec bash "$HERE/snort.sh" reload "$SNORT_DIR" ;;
  down) down ;;
  exec) h=$2; shift 2; exec ip netns exec "$(ns "$h")" "$@" ;;
  *) sed -n '2,34p' "$0"; exit 2 ;;
esac
