#!/usr/bin/env bash
# Builds Open vSwitch from Debian's openvswitch-source package with one of the
# tcp-migrate patch series (ovs-patch/patches/<base>/*.patch), runs the
# series' own autotests and installs the result.  Stock OVS in /usr is left
# alone.
#
# Usage: ovs-patch/build.sh [--base 3.1|3.5] [--prefix DIR] [--build-dir DIR]
#                           [--no-install] [--force]
#
#   --base       which series, i.e. which OVS release to patch.  Default: the
#                one of this machine's distribution (Debian 12 "bookworm":
#                3.1, Debian 13 "trixie": 3.5).
#   --prefix     where to install.  Default: /usr/local for the
#                distribution's own base, /usr/local/ovs-<base> for the
#                other one (so that it does not replace the default build).
#   --build-dir  where to unpack, build and test.  Default:
#                ovs-patch/build/<base>.
#   --no-install build and run the autotests only.
#   --force      rebuild even if nothing changed.
#
# The source is the openvswitch-source package of the Debian release that
# ships the base: installed with apt-get when it is the machine's own
# release, otherwise downloaded (apt-get download, with a private sources
# list and package lists under the build directory: the machine's apt
# configuration is not touched) and unpacked there.
#
# A second run with the same source, patches, options and script does
# nothing (the inputs are hashed into <build-dir>/stamp); after a
# --no-install run, a run without it only installs what was built and
# tested.  The full build output goes to <build-dir>/build.log; the terminal
# only gets one progress line per step, so this also works in CI without a
# tty.
#
# Environment:
#   OVS_TARBALL    source tarball or unpacked source tree to use instead of
#                  the Debian package (its version must match --base)
#   DEBIAN_MIRROR  archive for downloads (default http://deb.debian.org/debian)
#   JOBS           parallel make jobs (default: nproc)
set -Eeuo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
JOBS="${JOBS:-$(nproc)}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# Keyword given to every autotest the patch series add.
TEST_KEYWORD=tcp_seq
# The Debian release whose openvswitch-source each series is made for.
declare -A SUITE=([3.1]=bookworm [3.5]=trixie)
# Explicit build dependencies, all from Debian's archive.  autoconf provides
# autom4te, which regenerates the autotest suite from the patched tests/*.at
# files; without python3-netaddr and python3-pyparsing the autotests
# silently skip the Python flow parser.
DEPS=(build-essential autoconf automake libtool pkg-config patch python3
      python3-netaddr python3-pyparsing libssl-dev libcap-ng-dev)

usage() { sed -n '2,39p' "$0"; }

BASE="" PREFIX="" BUILD="" INSTALL=1 FORCE=0
while (($#)); do
    case "$1" in
        --base) BASE="${2:?--base needs a value}"; shift ;;
        --base=*) BASE="${1#*=}" ;;
        --prefix) PREFIX="${2:?--prefix needs a value}"; shift ;;
        --prefix=*) PREFIX="${1#*=}" ;;
        --build-dir) BUILD="${2:?--build-dir needs a value}"; shift ;;
        --build-dir=*) BUILD="${1#*=}" ;;
        --no-install) INSTALL=0 ;;
        --force) FORCE=1 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
    shift
done

CODENAME=$( (. /etc/os-release && echo "${VERSION_CODENAME:-}") 2>/dev/null || true)
DISTRO_BASE=""
for b in "${!SUITE[@]}"; do
    [[ "${SUITE[$b]}" == "$CODENAME" ]] && DISTRO_BASE=$b
done
if [[ -z "$BASE" ]]; then
    if [[ -z "$DISTRO_BASE" ]]; then
        echo "No patch series for this distribution (${CODENAME:-unknown})." \
             "Pass --base $(echo "${!SUITE[@]}" | tr ' ' '|')." >&2
        exit 2
    fi
    BASE=$DISTRO_BASE
fi
if [[ -z "${SUITE[$BASE]:-}" || ! -d "$HERE/patches/$BASE" ]]; then
    echo "No patch series for OVS $BASE (have: ${!SUITE[*]})." >&2
    exit 2
fi
if [[ -z "$PREFIX" ]]; then
    if [[ "$BASE" == "$DISTRO_BASE" ]]; then
        PREFIX=/usr/local
    else
        PREFIX=/usr/local/ovs-$BASE
    fi
fi
BUILD="$(mkdir -p "${BUILD:-$HERE/build/$BASE}" && cd "${BUILD:-$HERE/build/$BASE}" && pwd)"
SRC="$BUILD/src"
OBJ="$BUILD/obj"
DL="$BUILD/download"
LOG="$BUILD/build.log"
STAMP="$BUILD/stamp"
INSTALL_STAMP="$BUILD/stamp.installed"
CONFIGURE_ARGS=(--prefix="$PREFIX" --localstatedir="$PREFIX/var"
                --sysconfdir="$PREFIX/etc" PYTHON3=/usr/bin/python3
                CFLAGS=-O2)
INSTALLED=("$PREFIX/bin/ovs-ofctl" "$PREFIX/sbin/ovs-vswitchd"
           "$PREFIX/sbin/ovsdb-server"
           "$PREFIX/share/openvswitch/vswitch.ovsschema")

START=$(date +%s)
STEP=0
NSTEPS=$((INSTALL ? 9 : 8))
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

fail() {
    echo "$*" | tee -a "$LOG" >&2
    false
}

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "$@" >> "$LOG" 2>&1; then
        # A fresh machine may have no package lists yet.
        apt-get update >> "$LOG" 2>&1
        apt-get install -y --no-install-recommends "$@" >> "$LOG" 2>&1
    fi
}

# Hash of a source tarball or tree, for the stamp.
source_hash() {
    if [[ -d "$1" ]]; then
        (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z \
             | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1
    else
        sha256sum "$1" | cut -d' ' -f1
    fi
}

# The openvswitch-source package holds either a tarball (Debian 12) or the
# unpacked tree (Debian 13) under /usr/src/openvswitch.
package_source() {
    if [[ -f "$1/usr/src/openvswitch/openvswitch.tar.gz" ]]; then
        echo "$1/usr/src/openvswitch/openvswitch.tar.gz"
    elif [[ -f "$1/usr/src/openvswitch/configure.ac" ]]; then
        echo "$1/usr/src/openvswitch"
    else
        fail "no Open vSwitch source under $1/usr/src/openvswitch"
    fi
}

mkdir -p "$BUILD"
: > "$LOG"
trap on_error ERR
echo "OVS $BASE series, build directory $BUILD, prefix $PREFIX" | tee -a "$LOG"

step "checking build dependencies"
missing=()
for pkg in "${DEPS[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "      installing: ${missing[*]}"
    apt_install "${missing[@]}"
fi

step "getting the OVS $BASE source (openvswitch-source from ${SUITE[$BASE]})"
if [[ -n "${OVS_TARBALL:-}" ]]; then
    [[ -r "$OVS_TARBALL" ]] || fail "OVS_TARBALL $OVS_TARBALL not found"
    SOURCE="$OVS_TARBALL"
    SOURCE_ID="OVS_TARBALL $(source_hash "$SOURCE")"
elif [[ "$BASE" == "$DISTRO_BASE" ]]; then
    status=$(dpkg-query -W -f='${Status}' openvswitch-source 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || apt_install openvswitch-source
    version=$(dpkg-query -W -f='${Version}' openvswitch-source)
    SOURCE=$(package_source "")
    SOURCE_ID="openvswitch-source $version $(sha256sum \
        /var/lib/dpkg/info/openvswitch-source.md5sums | cut -d' ' -f1)"
else
    # Another Debian release's package: download it with a private apt
    # configuration under the build directory, so that the machine's own
    # sources and package lists stay as they are.  The download is kept,
    # so later runs need no network (--force downloads again).
    debs=("$DL"/openvswitch-source_"$BASE".*_all.deb)
    if ((FORCE)) || [[ ! -f "${debs[0]}" ]]; then
        rm -rf "$DL"
        mkdir -p "$DL/lists/partial" "$DL/archives/partial"
        echo "deb $MIRROR ${SUITE[$BASE]} main" > "$DL/sources.list"
        APT=(-o Dir::Etc::sourcelist="$DL/sources.list"
             -o Dir::Etc::sourceparts=-
             -o Dir::State::lists="$DL/lists"
             -o Dir::Cache="$DL/cache"
             -o Dir::Cache::archives="$DL/archives"
             -o APT::Sandbox::User=root)
        echo "downloading openvswitch-source from $MIRROR ${SUITE[$BASE]}" >> "$LOG"
        apt-get "${APT[@]}" update >> "$LOG" 2>&1 \
            || fail "apt-get update for ${SUITE[$BASE]} failed (no access to $MIRROR?)"
        (cd "$DL" && apt-get "${APT[@]}" download openvswitch-source) >> "$LOG" 2>&1 \
            || fail "apt-get download openvswitch-source from ${SUITE[$BASE]} failed"
        rm -rf "$DL/lists" "$DL/cache" "$DL/archives"
        debs=("$DL"/openvswitch-source_*_all.deb)
    fi
    deb="${debs[0]}"
    [[ -f "$deb" ]] || fail "no openvswitch-source package in $DL"
    version=$(dpkg-deb -f "$deb" Version)
    [[ "$version" == "$BASE".* ]] \
        || fail "${SUITE[$BASE]} has openvswitch-source $version, not $BASE.x"
    rm -rf "$DL/pkg"
    dpkg-deb -x "$deb" "$DL/pkg"
    SOURCE=$(package_source "$DL/pkg")
    SOURCE_ID="openvswitch-source $version $(sha256sum "$deb" | cut -d' ' -f1)"
fi
echo "source: $SOURCE ($SOURCE_ID)" >> "$LOG"

step "checking whether anything changed"
shopt -s nullglob
PATCHES=("$HERE/patches/$BASE"/*.patch)
shopt -u nullglob
((${#PATCHES[@]})) || fail "no patches in $HERE/patches/$BASE"
HASH=$( {
    echo "$SOURCE_ID"
    echo "${CONFIGURE_ARGS[*]}"
    for p in "${PATCHES[@]}"; do
        printf '%s ' "$(basename "$p")"
        sha256sum "$p" | cut -d' ' -f1
    done
    sha256sum "$0" | cut -d' ' -f1
} | sha256sum | cut -d' ' -f1 )
built=0
if ((!FORCE)) && [[ -f "$STAMP" && "$(cat "$STAMP")" == "$HASH" ]] \
        && [[ -x "$OBJ/vswitchd/ovs-vswitchd" ]]; then
    built=1
fi
# What the install stamp records: the inputs, the prefix, and the installed
# ovs-vswitchd, so that another build installed over it since is noticed.
install_id() {
    echo "$HASH $PREFIX $(sha256sum "$PREFIX/sbin/ovs-vswitchd" 2>/dev/null \
                          | cut -d' ' -f1)"
}
installed=0
if ((built)) && [[ -f "$INSTALL_STAMP" \
                  && "$(cat "$INSTALL_STAMP")" == "$(install_id)" ]]; then
    installed=1
    for f in "${INSTALLED[@]}"; do
        [[ -e "$f" ]] || installed=0
    done
fi
if ((built)) && ( ((!INSTALL)) || ((installed)) ); then
    echo "Nothing to do: patched OVS $BASE is already built and tested" \
         "$( ((INSTALL)) && echo "and installed in $PREFIX")" \
         "(stamp ${HASH:0:12}, same source, patches, options and script)."
    echo "Use --force to rebuild."
    exit 0
fi
rm -f "$INSTALL_STAMP"
# Steps 4 to 8: unpack, patch, configure, build, run the autotests.
build_and_test() {
    rm -f "$STAMP"

    step "unpacking $SOURCE"
    rm -rf "$SRC" "$OBJ"
    mkdir -p "$SRC" "$OBJ"
    if [[ -d "$SOURCE" ]]; then
        cp -a "$SOURCE/." "$SRC/"
    else
        # The tarball holds a single top-level directory.
        tar -xzf "$SOURCE" -C "$SRC" --strip-components=1 >> "$LOG" 2>&1
    fi
    grep -q "AC_INIT(openvswitch, $BASE\." "$SRC/configure.ac" \
        || fail "$SOURCE is not Open vSwitch $BASE.x"

    step "applying ${#PATCHES[@]} patches (series $BASE)"
    for p in "${PATCHES[@]}"; do
        echo "applying $(basename "$p")" >> "$LOG"
        # --fuzz=0: a patch that does not apply exactly is an error, not a guess.
        if ! patch -d "$SRC" -p1 --batch --forward --fuzz=0 < "$p" >> "$LOG" 2>&1
        then
            fail "patch $(basename "$p") does not apply to $SOURCE"
        fi
    done

    step "configuring"
    (cd "$OBJ" && "$SRC/configure" "${CONFIGURE_ARGS[@]}") >> "$LOG" 2>&1

    step "building with $JOBS jobs"
    make -C "$OBJ" -j"$JOBS" >> "$LOG" 2>&1

    step "running the series' autotests (-k $TEST_KEYWORD)"
    # Tests run before installing, so a broken build never reaches $PREFIX.
    make -C "$OBJ" -j"$JOBS" check \
        TESTSUITEFLAGS="-j$JOBS -k $TEST_KEYWORD" >> "$LOG" 2>&1
    summary=$(grep -E '^(All [0-9]+ tests were successful|ERROR: )' "$LOG" | tail -n 1)
    echo "      $summary"
    echo "$HASH" > "$STAMP"
}

if ((!built)); then
    build_and_test
else
    echo "      already built and tested (stamp ${HASH:0:12}), installing only"
    STEP=$((NSTEPS - 1))
fi

if ((INSTALL)); then
    step "installing under $PREFIX"
    make -C "$OBJ" install >> "$LOG" 2>&1
    for f in "${INSTALLED[@]}"; do
        [[ -e "$f" ]] || fail "missing after install: $f"
    done
    "$PREFIX/sbin/ovs-vswitchd" --version | head -n 1 >> "$LOG"
    install_id > "$INSTALL_STAMP"
fi

echo "Done in $(elapsed): $("$OBJ/vswitchd/ovs-vswitchd" --version | head -n 1)," \
     "series $BASE$( ((INSTALL)) && echo ", installed in $PREFIX"); log: $LOG"
