#!/usr/bin/env bash
# Removes what a crashed test run left behind: only names with the tests' 'tmt' prefix.
set -u
for ns in $(ip netns list | awk '{print $1}' | grep -E '^tmt[0-9a-f]{4}-' || true); do
  for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null && echo "removed netns $ns"
done
for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^tmt[0-9a-f]{4}-' || true); do
  ip link del "$link" 2>/dev/null && echo "removed link $link"
done
for dir in /tmp/tmt-ovs-*; do
  [ -d "$dir" ] || continue
  for pidf in "$dir"/*.pid; do [ -f "$pidf" ] && kill -9 "$(cat "$pidf")" 2>/dev/null; done
  rm -rf "$dir" && echo "removed $dir"
done
# Netdev bridges leave tap devices named after the bridge; tests name bridges 'tmtbr*'.
for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^tmtbr' || true); do
  ip link del "$link" 2>/dev/null && echo "removed link $link"
done
exit 0
