#!/usr/bin/env bash
# Installs what tcp-migrate needs on Debian 12 (or Ubuntu): system packages, Suricata from
# bookworm-backports (optional), Snort 3 (topo/install-snort.sh: a prebuilt bundle, SNORT_BUNDLE or
# ../shared/ids/snort3/; a failure there fails this script), and the patched Open vSwitch
# (ovs-patch/build.sh, idempotent), and the QUIC test peers' trixie root (topo/quic-root.sh,
# optional). Used by .ci/run and by `npm run demo`. Run as root.
#
# Usage: topo/install-deps.sh [--no-suricata] [--no-snort] [--no-ovs-build] [--no-quic] [--quiet]
set -euo pipefail
cd "$(dirname "$0")/.."

suricata=1 snort=1 ovs=1 quic=1 quiet=0
for a in "$@"; do
  case "$a" in
    --no-suricata) suricata=0 ;;
    --no-snort) snort=0 ;;
    --no-ovs-build) ovs=0 ;;
    --no-quic) quic=0 ;;
    --quiet) quiet=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "install-deps.sh: unknown option $a" >&2; exit 2 ;;
  esac
done
say() { [ "$quiet" = 1 ] || echo "[deps] $*"; }
[ "$(id -u)" = 0 ] || { echo "install-deps.sh: run as root (apt-get and OVS need it)" >&2; exit 1; }

PACKAGES=(
  openvswitch-switch openvswitch-common openvswitch-source  # stock OVS (tests, relay mode) + the patch's source
  iproute2 ethtool nftables procps kmod                     # namespaces, offload off, packet loss for tests
  tcpdump iperf3 iputils-ping netcat-openbsd                # looking at and loading the network
  tshark                                                    # dissects frames built by the packet codec
  mininet                                                   # topo/mininet_topo.py
  python3-os-ken                                            # the peer controller for benchmarks
  chromium                                                  # dashboard browser test
  etcd-server etcd-client                                   # standby-controller election (controller/ha/)
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Our tests and the demo start private OVS instances: keep the packaged service from starting.
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; created_policy=1; fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
else
  say "system packages present"
fi

if [ "$suricata" = 1 ]; then
  say "Suricata (bookworm-backports)"
  # In CI the live-Suricata tests must run: a failed install fails here, where it is easiest to read.
  bash topo/install-suricata.sh || {
    if [ -n "${CI:-}" ]; then echo "[deps] Suricata could not be installed (see above)" >&2; exit 1; fi
    echo "[deps] Suricata could not be installed; the built-in matcher still works" >&2
  }
fi

if [ "$snort" = 1 ]; then
  say "Snort 3 (topo/install-snort.sh)"
  # Not optional once asked for: the live Snort tests must run in CI, not silently skip.
  bash topo/install-snort.sh || { echo "[deps] Snort 3 could not be installed (see above); --no-snort skips it" >&2; exit 1; }
fi

if [ "$quic" = 1 ]; then
  say "the QUIC test peers' Debian trixie root (topo/quic-root.sh: aioquic, ngtcp2; a no-op when current)"
  bash topo/quic-root.sh build
fi

if [ "$ovs" = 1 ]; then
  say "patched Open vSwitch (ovs-patch/build.sh)"
  bash ovs-patch/build.sh
fi
