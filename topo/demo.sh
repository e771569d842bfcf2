#!/usr/bin/env bash
# `npm run demo` on a fresh clone: system packages, Suricata and the patched OVS (topo/install-deps.sh,
# with progress; Snort 3 too with --analyzer snort), npm packages if missing, then the demo itself
# (topo/demo.ts). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "npm run demo: run as root (it installs packages and creates namespaces and an OVS bridge)" >&2; exit 1; fi
install=1 snort=--no-snort quic=--no-quic prev=
for a in "$@"; do
  [ "$a" = --no-install ] && install=0
  # The QUIC peers' trixie root (topo/quic-root.sh) only for --quic.
  [ "$a" = --quic ] && quic=
  # Snort 3 comes from a bundle (topo/install-snort.sh): installed only when the demo uses it.
  [ "$prev" = --analyzer ] && [ "$a" = snort ] && snort=
  prev=$a
done
if [ "$install" = 1 ]; then
  echo "[1/6] Setting up what is missing"
  bash topo/install-deps.sh ${quic:+"$quic"} ${snort:+"$snort"}
  if [ ! -x node_modules/.bin/tsx ]; then echo "[deps] npm packages"; npm ci --no-audit --no-fund; fi
fi
if [ ! -x node_modules/.bin/tsx ]; then echo "npm packages are missing: run npm ci (or npm run demo without --no-install)" >&2; exit 1; fi
exec node_modules/.bin/tsx topo/demo.ts --installed "$@"
