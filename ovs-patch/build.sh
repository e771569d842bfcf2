#!/usr/bin/env bash
# Builds Open vSwitch from Debian's openvswitch-source tarball with the
# tcp-migrate patch series (ovs-patch/patches/*.patch), runs the series' own
# autotests and installs the result under /usr/local.  Stock OVS in /usr is
# left alone.
#
# Usage: ovs-patch/build.sh [--force]
#
# A second run with the same tarball, patches and script does nothing (the
# inputs are hashed into ovs-patch/build/stamp).  --force rebuilds anyway.
# The full build output goes to ovs-patch/build/build.log; the terminal only
# gets one progress line per step, so this also works in CI without a tty.
#
# Environment:
#   OVS_TARBALL  source tarball (default /usr/src/openvswitch/openvswitch.tar.gz)
#   JOBS         parallel make jobs (default: nproc)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD="$HERE/build"
SRC="$BUILD/src"
OBJ="$BUILD/obj"
LOG="$BUILD/build.log"
STAMP="$BUILD/stamp"
PREFIX=/usr/local
TARBALL="${OVS_TARBALL:-/usr/src/openvswitch/openvswitch.tar.gz}"
JOBS="${JOBS:-$(nproc)}"
# Keyword given to every autotest the patch series adds.
TEST_KEYWORD=tcp_seq
# Explicit build dependencies, all from Debian's archive.  openvswitch-source
# provides the tarball; autoconf provides autom4te, which regenerates the
# autotest suite from the patched tests/*.at files; without python3-netaddr
# and python3-pyparsing the autotests silently skip the Python flow parser.
DEPS=(build-essential autoconf automake libtool pkg-config patch python3
      python3-netaddr python3-pyparsing libssl-dev libcap-ng-dev
      openvswitch-source)
CONFIGURE_ARGS=(--prefix="$PREFIX" --localstatedir="$PREFIX/var"
                --sysconfdir="$PREFIX/etc" PYTHON3=/usr/bin/python3
                CFLAGS=-O2)
INSTALLED=("$PREFIX/bin/ovs-ofctl" "$PREFIX/sbin/ovs-vswitchd"
           "$PREFIX/sbin/ovsdb-server"
           "$PREFIX/share/openvswitch/vswitch.ovsschema")

FORCE=0
case "${1:-}" in
    --force) FORCE=1 ;;
    "") ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

START=$(date +%s)
STEP=0
NSTEPS=8
CURRENT="starting"

elapsed() {
    local s=$(( $(date +%s) - START ))
    printf '%d:%02d' $((s / 60)) $((s % 60))
}

step() {
    STEP=$((STEP + 1))
    CURRENT="$*"
    printf '[%d/%d] %s (elapsed %s)\n' "$STEP" "$NSTEPS" "$*" "$(elapsed)"
    printf '\n===== [%d/%d] %s (%s) =====\n' "$STEP" "$NSTEPS" "$*" \
        "$(date -u +%FT%TZ)" >> "$LOG"
}

on_error() {
    local rc=$?
    trap - ERR
    echo "FAILED at step $STEP/$NSTEPS ($CURRENT) after $(elapsed)," \
         "exit status $rc.  Last lines of $LOG:" >&2
    tail -n 40 "$LOG" >&2 || true
    exit "$rc"
}

mkdir -p "$BUILD"
: > "$LOG"
trap on_error ERR

step "checking build dependencies"
missing=()
for pkg in "${DEPS[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "      installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${missing[@]}" \
            >> "$LOG" 2>&1; then
        # A fresh machine may have no package lists yet.
        apt-get update >> "$LOG" 2>&1
        apt-get install -y --no-install-recommends "${missing[@]}" >> "$LOG" 2>&1
    fi
fi
[[ -r "$TARBALL" ]] || { echo "source tarball $TARBALL not found" >> "$LOG"; false; }

step "checking whether anything changed"
shopt -s nullglob
PATCHES=("$HERE"/patches/*.patch)
shopt -u nullglob
((${#PATCHES[@]})) || { echo "no patches in $HERE/patches" >> "$LOG"; false; }
HASH=$( {
    sha256sum "$TARBALL" | cut -d' ' -f1
    for p in "${PATCHES[@]}"; do
        printf '%s ' "$(basename "$p")"
        sha256sum "$p" | cut -d' ' -f1
    done
    sha256sum "$0" | cut -d' ' -f1
} | sha256sum | cut -d' ' -f1 )
all_installed=1
for f in "${INSTALLED[@]}"; do
    [[ -e "$f" ]] || all_installed=0
done
if ((!FORCE)) && ((all_installed)) && [[ -f "$STAMP" ]] \
        && [[ "$(cat "$STAMP")" == "$HASH" ]]; then
    echo "Nothing to do: patched OVS is already built, tested and installed" \
         "in $PREFIX (stamp ${HASH:0:12}, same tarball, patches and script)."
    echo "Use --force to rebuild."
    exit 0
fi
rm -f "$STAMP"

step "unpacking $(basename "$TARBALL")"
rm -rf "$SRC" "$OBJ"
mkdir -p "$SRC" "$OBJ"
# The tarball holds a single top-level directory.
tar -xzf "$TARBALL" -C "$SRC" --strip-components=1 >> "$LOG" 2>&1

step "applying ${#PATCHES[@]} patches"
for p in "${PATCHES[@]}"; do
    echo "applying $(basename "$p")" >> "$LOG"
    # --fuzz=0: a patch that does not apply exactly is an error, not a guess.
    if ! patch -d "$SRC" -p1 --batch --forward --fuzz=0 < "$p" >> "$LOG" 2>&1
    then
        echo "patch $(basename "$p") does not apply to $TARBALL" | tee -a "$LOG" >&2
        false
    fi
done

step "configuring"
(cd "$OBJ" && "$SRC/configure" "${CONFIGURE_ARGS[@]}") >> "$LOG" 2>&1

step "building with $JOBS jobs"
make -C "$OBJ" -j"$JOBS" >> "$LOG" 2>&1

step "running the patch's autotests (-k $TEST_KEYWORD)"
# Tests run before installing, so a broken build never reaches /usr/local.
make -C "$OBJ" -j"$JOBS" check \
    TESTSUITEFLAGS="-j$JOBS -k $TEST_KEYWORD" >> "$LOG" 2>&1
summary=$(grep -E '^(All [0-9]+ tests were successful|ERROR: )' "$LOG" | tail -n 1)
echo "      $summary"

step "installing under $PREFIX"
make -C "$OBJ" install >> "$LOG" 2>&1
for f in "${INSTALLED[@]}"; do
    [[ -e "$f" ]] || { echo "missing after install: $f" >> "$LOG"; false; }
done
"$PREFIX/sbin/ovs-vswitchd" --version | head -n 1 >> "$LOG"

echo "$HASH" > "$STAMP"
echo "Done in $(elapsed): $("$PREFIX/sbin/ovs-vswitchd" --version | head -n 1)" \
     "in $PREFIX; log: $LOG"
