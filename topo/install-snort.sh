#!/usr/bin/env bash
# Installs Snort 3 under /opt/snort3 (Debian has no Snort package) and links /usr/local/bin/snort.
# Idempotent: a second run with the same bundle only checks the runtime packages. Run as root.
#
#   topo/install-snort.sh                 the prebuilt bundle (default below, or SNORT_BUNDLE=path)
#   topo/install-snort.sh --from-source   build Snort 3 and libdaq from their official sources
#                                         (needs github.com; used automatically when no bundle
#                                         exists and github.com is reachable)
#
# Bundle: SNORT_BUNDLE, default <parent of the repository>/shared/ids/snort3/snort3-bundle.tar.gz
# (a tarball holding snort3/{bin,lib,etc,share}, built with --prefix=/opt/snort3; see the README
# beside it). The versions below are the ones the bundle carries and the tests were run with.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# The bundle is built for /opt/snort3 (RUNPATH); another SNORT_PREFIX needs LD_LIBRARY_PATH=<prefix>/lib.
PREFIX="${SNORT_PREFIX:-/opt/snort3}"
BUNDLE="${SNORT_BUNDLE:-$(dirname "$ROOT")/shared/ids/snort3/snort3-bundle.tar.gz}"
SNORT_VERSION=3.12.2.0
DAQ_VERSION=3.0.25
# Runtime libraries of the bundle's snort and DAQ modules (bundle README).
RUNTIME=(libdumbnet1 libhwloc15 libluajit-5.1-2 libssl3 libpcap0.8 libpcre2-8-0 zlib1g liblzma5 libnuma1 libuuid1)
# Only for --from-source.
BUILD_DEPS=(build-essential cmake pkg-config autoconf automake libtool flex bison curl ca-certificates
  libdumbnet-dev libhwloc-dev libluajit-5.1-dev libssl-dev libpcap-dev libpcre2-dev zlib1g-dev
  liblzma-dev libnuma-dev uuid-dev)

from_source=0
for a in "$@"; do
  case "$a" in
    --from-source) from_source=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install-snort.sh: unknown option $a" >&2; exit 2 ;;
  esac
done
say() { echo "[snort] $*"; }
die() { echo "install-snort.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (apt-get, /opt)"

apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ "${#missing[@]}" = 0 ] && return 0
  say "apt-get install ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

finish() {
  ln -sfn "$PREFIX/bin/snort" /usr/local/bin/snort
  "$PREFIX/bin/snort" -V || die "$PREFIX/bin/snort -V failed"
}

if [ -n "${SNORT_BUNDLE:-}" ] && [ ! -f "$SNORT_BUNDLE" ]; then
  die "SNORT_BUNDLE=$SNORT_BUNDLE: no such file"
fi

if [ "$from_source" = 0 ] && [ -f "$BUNDLE" ]; then
  apt_install "${RUNTIME[@]}"
  sum=$(sha256sum "$BUNDLE" | cut -d' ' -f1)
  if [ -x "$PREFIX/bin/snort" ] && [ "$(cat "$PREFIX/.bundle-sha256" 2>/dev/null)" = "$sum" ] && "$PREFIX/bin/snort" -V >/dev/null 2>&1; then
    say "already installed from $BUNDLE"
    finish
    exit 0
  fi
  say "unpacking $BUNDLE to $PREFIX"
  tmp=$(mktemp -d "$(dirname "$PREFIX")/.snort3-install.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  tar xzf "$BUNDLE" -C "$tmp"
  [ -x "$tmp/snort3/bin/snort" ] || die "$BUNDLE does not hold snort3/bin/snort"
  echo "$sum" > "$tmp/snort3/.bundle-sha256"
  rm -rf "$PREFIX.old"
  [ -e "$PREFIX" ] && mv "$PREFIX" "$PREFIX.old"
  mv "$tmp/snort3" "$PREFIX"
  rm -rf "$PREFIX.old"
  finish
  exit 0
fi

if [ "$from_source" = 0 ]; then
  if [ -x "$PREFIX/bin/snort" ] && "$PREFIX/bin/snort" -V >/dev/null 2>&1; then
    say "no bundle at $BUNDLE; keeping the Snort already in $PREFIX"
    finish
    exit 0
  fi
  if ! timeout 10 bash -c 'exec 3<>/dev/tcp/github.com/443' 2>/dev/null; then
    die "no Snort 3 bundle at $BUNDLE and github.com is unreachable, so Snort cannot be built either.
  Get a bundle (a tarball of snort3/{bin,lib,etc,share} built with --prefix=/opt/snort3, e.g. the one
  in shared/ids/snort3/ beside this repository), then: SNORT_BUNDLE=/path/to/snort3-bundle.tar.gz $0
  Or, on a machine with internet access: $0 --from-source (builds Snort $SNORT_VERSION and libdaq $DAQ_VERSION)."
  fi
  say "no bundle at $BUNDLE: building from source"
fi

# ---- build from the official sources (documented fallback; needs github.com) ------------------
apt_install "${BUILD_DEPS[@]}" "${RUNTIME[@]}"
src=$(mktemp -d /tmp/snort3-src.XXXXXX)
trap 'rm -rf "$src"' EXIT
log="$src/build.log"
fetch() { curl -fsSL --retry 3 -o "$src/$1.tar.gz" "$2" && tar xzf "$src/$1.tar.gz" -C "$src"; }
say "libdaq $DAQ_VERSION (log: $log)"
fetch libdaq "https://github.com/snort3/libdaq/archive/refs/tags/v$DAQ_VERSION.tar.gz"
( cd "$src/libdaq-$DAQ_VERSION" && ./bootstrap && ./configure --prefix="$PREFIX" \
  && make -j"$(nproc)" && make install ) >>"$log" 2>&1 || die "libdaq build failed, see $log"
say "snort $SNORT_VERSION"
fetch snort3 "https://github.com/snort3/snort3/archive/refs/tags/$SNORT_VERSION.tar.gz"
( cd "$src/snort3-$SNORT_VERSION" \
  && PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig" LDFLAGS="-Wl,-rpath,$PREFIX/lib" \
     ./configure_cmake.sh --prefix="$PREFIX" --build-type=Release --disable-gdb \
       --with-daq-includes="$PREFIX/include" --with-daq-libraries="$PREFIX/lib" \
  && make -C build -j"$(nproc)" install ) >>"$log" 2>&1 || { cp "$log" /tmp/snort3-build.log; die "snort build failed, see /tmp/snort3-build.log"; }
echo "source $SNORT_VERSION/$DAQ_VERSION" > "$PREFIX/.bundle-sha256"
finish
