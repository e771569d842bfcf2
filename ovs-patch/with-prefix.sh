#!/usr/bin/env bash
# Runs a command with the Open vSwitch installed under PREFIX standing in for
# the one in /usr/local, without touching /usr/local: in a private mount
# namespace, every program in PREFIX/bin and PREFIX/sbin is bind-mounted over
# its namesake in /usr/local/bin and /usr/local/sbin, and
# PREFIX/share/openvswitch over /usr/local/share/openvswitch.  Processes
# outside (e.g. other test runs using /usr/local's OVS) see nothing of it.
#
# Usage (as root): ovs-patch/with-prefix.sh PREFIX COMMAND [ARG...]
# Example: ovs-patch/with-prefix.sh /usr/local/ovs-3.5 \
#              node test/run.mjs test/integration/ovs-patch-transparency.test.ts
set -euo pipefail

if [[ "${1:-}" == --inside ]]; then
    shift
    PREFIX=$1
    shift
    for dir in bin sbin; do
        for f in "$PREFIX/$dir"/ovs* "$PREFIX/$dir"/vtep*; do
            target=/usr/local/$dir/$(basename "$f")
            if [[ -f "$f" && -e "$target" ]]; then
                mount --bind "$f" "$target"
            fi
        done
    done
    if [[ -d /usr/local/share/openvswitch ]]; then
        mount --bind "$PREFIX/share/openvswitch" /usr/local/share/openvswitch
    fi
    echo "with-prefix: /usr/local's OVS programs are now $PREFIX's:" \
         "$(/usr/local/sbin/ovs-vswitchd --version | head -n 1)" >&2
    exec "$@"
fi

if (($# < 2)); then
    sed -n '2,11p' "$0" >&2
    exit 2
fi
PREFIX=$(cd "$1" && pwd)
shift
for f in "$PREFIX/sbin/ovs-vswitchd" "$PREFIX/bin/ovs-ofctl" \
         "$PREFIX/share/openvswitch/vswitch.ovsschema"; do
    [[ -e "$f" ]] || { echo "with-prefix: $f is missing" >&2; exit 2; }
done
exec unshare --mount --propagation private -- "$0" --inside "$PREFIX" "$@"
