#!/usr/bin/env bash
# The QUIC test peers' root: a minimal Debian trixie tree (debootstrap --variant=minbase) with
# python3-aioquic and ngtcp2's example client and server. Debian 12 has neither, and bookworm's
# python cannot load trixie's modules, so the peers run chrooted in this tree inside the test
# hosts' network namespaces. Run as root.
#
# Usage: topo/quic-root.sh [build]              build the root if missing or stale (a no-op when current)
#        topo/quic-root.sh status               what is installed, its size, and whether it works
#        topo/quic-root.sh exec NETNS -- CMD... run CMD chrooted in the root, inside network namespace
#                                               NETNS ('-': the current one); topo/apps/quic/ is at /opt/tmt-quic
#
# Env: TMT_QUIC_ROOT (default /var/lib/tcp-migrate/quic-root), TMT_QUIC_MIRROR (default: the
# Debian mirror apt uses here, from /etc/apt/sources.list(.d)).
set -euo pipefail

ROOT=${TMT_QUIC_ROOT:-/var/lib/tcp-migrate/quic-root}
SUITE=trixie
# Bump when the recipe below changes: a root built by an older recipe is rebuilt.
RECIPE=1
STAMP="$ROOT/.tmt-quic-root"
APPS="$(cd "$(dirname "$0")" && pwd)/apps/quic"
APPS_IN_ROOT=/opt/tmt-quic
REQUIRED=(python3-aioquic)           # the peers of the tests
OPTIONAL=(ngtcp2-client ngtcp2-server) # a second implementation, for checks by hand

die() { echo "quic-root.sh: $*" >&2; exit 1; }
t0=$SECONDS
step() { echo "[quic-root +$((SECONDS - t0))s] $*"; }

# Runs "$@" chrooted in directory $1 (the rest), in a private mount namespace: /proc, /dev, a
# tmpfs /tmp and the apps directory are mounted there only, so they vanish with the process,
# however it ends, and the host's mount table never sees them.
# shellcheck disable=SC2016  # expanded by that inner sh
IN_ROOT='r=$1; apps=$2; shift 2
mount -t proc proc "$r/proc" && mount --rbind /dev "$r/dev" && mount -t tmpfs -o size=256m,mode=1777 tmpfs "$r/tmp" || exit 125
if [ -d "$apps" ] && [ -d "$r/opt/tmt-quic" ]; then mount --bind "$apps" "$r/opt/tmt-quic" && mount -o remount,bind,ro "$r/opt/tmt-quic" || exit 125; fi
exec chroot "$r" "$@"'
in_root() { local r=$1; shift; unshare --mount --propagation private sh -c "$IN_ROOT" sh "$r" "$APPS" "$@"; }

# The Debian mirror this machine's apt uses (one-line or deb822 sources), so the root comes from
# the same place as everything else here.
find_mirror() {
  local m
  m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\//) { print $i; break } }' |
    grep -E '/debian/?$' | head -n1 || true)
  if [ -z "$m" ]; then
    m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' |
      grep -E '/debian/?$' | head -n1 || true)
  fi
  echo "${m%/}"
}

stamp_current() { [ -f "$STAMP" ] && head -n1 "$STAMP" | grep -qx "recipe=$RECIPE suite=$SUITE"; }

# Refuses to delete a tree that still has something mounted inside (a build killed halfway).
safe_rm() {
  local d=$1
  [ -e "$d" ] || return 0
  if awk -v d="$d/" '{ if (index($5 "/", d) == 1) found = 1 } END { exit !found }' /proc/self/mountinfo; then
    die "$d still has mounts in it (see /proc/self/mountinfo); unmount them (umount -R) and run again"
  fi
  rm -rf --one-file-system "$d"
}

cmd_build() {
  [ "$(id -u)" = 0 ] || die "run as root (debootstrap and chroot need it): sudo bash topo/quic-root.sh build"
  if stamp_current; then echo "quic-root: $ROOT is current ($(sed -n 's/^packages=//p' "$STAMP"))"; return 0; fi
  mkdir -p "$(dirname "$ROOT")"
  # One build at a time; whoever waited finds the root current.
  exec 9> "$ROOT.lock"
  flock 9
  if stamp_current; then echo "quic-root: $ROOT is current ($(sed -n 's/^packages=//p' "$STAMP"))"; return 0; fi
  step "building a Debian $SUITE root at $ROOT"
  export DEBIAN_FRONTEND=noninteractive
  if ! command -v debootstrap >/dev/null; then
    step "installing debootstrap"
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; } ||
      die "could not install debootstrap: apt-get install debootstrap, then run again"
  fi
  [ -e /usr/share/debootstrap/scripts/$SUITE ] || die "this debootstrap does not know $SUITE: apt-get install -t bookworm-backports debootstrap (or a newer one)"
  local mirror=${TMT_QUIC_MIRROR:-$(find_mirror)}
  [ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list(.d): set TMT_QUIC_MIRROR=http://deb.debian.org/debian"

  # Built beside the final path and moved into place only when complete: an interrupted build
  # leaves no half root that a test could take for a working one.
  local tmp="$ROOT.build"
  safe_rm "$tmp"
  step "debootstrap --variant=minbase $SUITE from $mirror (the slow part)"
  # debootstrap mounts /proc and /sys in the target: in a private mount namespace those mounts
  # end with it, even if it is killed.
  if ! unshare --mount --propagation private debootstrap --variant=minbase --keyring=/usr/share/keyrings/debian-archive-keyring.gpg "$SUITE" "$tmp" "$mirror" > "$ROOT.debootstrap.log" 2>&1; then
    tail -n 20 "$ROOT.debootstrap.log" >&2
    die "debootstrap failed (log: $ROOT.debootstrap.log, and $tmp/debootstrap/debootstrap.log): check that $mirror is reachable and has $SUITE, then run again"
  fi
  rm -f "$ROOT.debootstrap.log"

  # No documentation, manuals or translations: the root only runs test peers.
  mkdir -p "$tmp/etc/dpkg/dpkg.cfg.d" "$tmp$APPS_IN_ROOT"
  printf '%s\n' 'path-exclude=/usr/share/doc/*' 'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/info/*' \
    'path-exclude=/usr/share/locale/*' 'path-include=/usr/share/locale/locale.alias' > "$tmp/etc/dpkg/dpkg.cfg.d/01-tmt-nodoc"
  printf '#!/bin/sh\nexit 101\n' > "$tmp/usr/sbin/policy-rc.d"; chmod +x "$tmp/usr/sbin/policy-rc.d"
  echo "deb $mirror $SUITE main" > "$tmp/etc/apt/sources.list"
  cp /etc/resolv.conf "$tmp/etc/resolv.conf" 2>/dev/null || true

  step "apt-get update in the root"
  in_root "$tmp" apt-get update -qq || die "apt-get update inside the root failed: check that $mirror is reachable, then run again"
  local want=("${REQUIRED[@]}") p absent=()
  for p in "${OPTIONAL[@]}"; do
    if in_root "$tmp" apt-cache show "$p" >/dev/null 2>&1; then want+=("$p"); else absent+=("$p"); fi
  done
  [ "${#absent[@]}" = 0 ] || step "not in $SUITE, skipped: ${absent[*]}"
  step "installing ${want[*]} (--no-install-recommends)"
  in_root "$tmp" apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null ||
    die "apt-get install ${want[*]} inside the root failed (see above): run again; if a package is gone from $SUITE, change REQUIRED/OPTIONAL in $0"

  step "checking that aioquic loads"
  local aioquic
  aioquic=$(in_root "$tmp" python3 -c 'import aioquic, cryptography; print(aioquic.__version__)') ||
    die "python3 in the root cannot import aioquic (see above): delete $tmp and run again"

  step "removing apt lists, caches and docs"
  in_root "$tmp" apt-get clean
  rm -rf "$tmp"/var/lib/apt/lists/* "$tmp"/var/cache/apt/*.bin "$tmp"/var/cache/debconf/*-old \
    "$tmp"/usr/share/doc/* "$tmp"/usr/share/man/* "$tmp"/usr/share/info/* "$tmp"/var/log/*.log "$tmp"/var/log/apt/*
  find "$tmp/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true

  local versions
  # shellcheck disable=SC2016  # dpkg-query's format, not ours
  versions=$(in_root "$tmp" dpkg-query -W -f='${Package}=${Version} ' "${want[@]}")
  {
    echo "recipe=$RECIPE suite=$SUITE"
    echo "packages=${versions% }"
    echo "aioquic=$aioquic"
    [ "${#absent[@]}" = 0 ] || echo "absent=${absent[*]}"
    echo "mirror=$mirror"
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ) seconds=$((SECONDS - t0))"
  } > "$tmp/.tmt-quic-root"

  # Replace a stale root only now; nothing mounted may remain in it.
  if [ -e "$ROOT" ]; then safe_rm "$ROOT"; fi
  mv "$tmp" "$ROOT"
  step "done: $(du -sh --one-file-system "$ROOT" | cut -f1) at $ROOT (${versions% })"
}

cmd_status() {
  if [ ! -d "$ROOT" ]; then echo "quic-root: no root at $ROOT (build it: bash topo/quic-root.sh build)"; return 1; fi
  if ! stamp_current; then echo "quic-root: $ROOT is incomplete or from another recipe (rebuild: bash topo/quic-root.sh build)"; return 1; fi
  echo "root: $ROOT"
  cat "$STAMP"
  echo "size=$(du -sh --one-file-system "$ROOT" | cut -f1)"
  local v
  v=$(in_root "$ROOT" python3 -c 'import aioquic; print(aioquic.__version__)') || { echo "quic-root: aioquic does not load in $ROOT (rebuild: rm -rf $ROOT; bash topo/quic-root.sh build)"; return 1; }
  echo "aioquic loads: $v"
}

cmd_exec() {
  [ $# -ge 1 ] || die "usage: quic-root.sh exec NETNS -- CMD [ARGS...]"
  local ns=$1; shift
  [ "${1:-}" = -- ] && shift
  [ $# -ge 1 ] || die "usage: quic-root.sh exec NETNS -- CMD [ARGS...] (no command given)"
  [ "$(id -u)" = 0 ] || die "exec needs root (chroot, mounts, network namespaces)"
  stamp_current || die "no working QUIC root at $ROOT: run bash topo/quic-root.sh build"
  # Every step execs the next, so the caller's pid ends up being CMD itself: a signal to it
  # reaches CMD, and when it exits its private mount namespace (and the mounts) is gone.
  if [ "$ns" = - ]; then
    exec unshare --mount --propagation private sh -c "$IN_ROOT" sh "$ROOT" "$APPS" "$@"
  fi
  [ -e "/run/netns/$ns" ] || die "no network namespace '$ns' (ip netns list)"
  exec ip netns exec "$ns" unshare --mount --propagation private sh -c "$IN_ROOT" sh "$ROOT" "$APPS" "$@"
}

case "${1:-build}" in
  build) cmd_build ;;
  status) cmd_status ;;
  exec) shift; cmd_exec "$@" ;;
  -h|--help) sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0" ;;
  *) die "unknown subcommand '$1' (build, status, exec NETNS -- CMD...)" ;;
esac
