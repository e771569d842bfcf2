#!/usr/bin/env bash
# Runs the patched Open vSwitch built by ovs-patch/build.sh (installed under /usr/local):
# its own ovsdb-server and ovs-vswitchd, with the run, database and log directories compiled
# into that build, so the /usr/local/bin tools (ovs-vsctl, ovs-ofctl, ovs-appctl) find it
# without options.  Debian's stock OVS (/usr, /var/run/openvswitch) is not touched.
#
# Usage: ovs-patch/ovs.sh start|stop|status
set -euo pipefail

PREFIX=/usr/local
RUNDIR="$PREFIX/var/run/openvswitch"
LOGDIR="$PREFIX/var/log/openvswitch"
DBDIR="$PREFIX/etc/openvswitch"
DB="$DBDIR/conf.db"
SCHEMA="$PREFIX/share/openvswitch/vswitch.ovsschema"
BIN="$PREFIX/bin"
SBIN="$PREFIX/sbin"

# Make sure every tool talks to this instance even if the caller exported other paths.
export OVS_RUNDIR="$RUNDIR" OVS_LOGDIR="$LOGDIR" OVS_DBDIR="$DBDIR"
unset OVS_SYSCONFDIR OVS_PKGDATADIR

pid_of() {
    local f="$RUNDIR/$1.pid"
    [[ -f "$f" ]] || return 1
    local pid
    pid=$(cat "$f")
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

require_build() {
    for f in "$SBIN/ovsdb-server" "$SBIN/ovs-vswitchd" "$BIN/ovsdb-tool" "$SCHEMA"; do
        [[ -e "$f" ]] || { echo "$f is missing; run ovs-patch/build.sh first" >&2; exit 1; }
    done
}

start() {
    require_build
    mkdir -p "$RUNDIR" "$LOGDIR" "$DBDIR"
    if [[ ! -e "$DB" ]]; then
        "$BIN/ovsdb-tool" create "$DB" "$SCHEMA"
        echo "created database $DB"
    elif [[ "$("$BIN/ovsdb-tool" needs-conversion "$DB" "$SCHEMA")" == yes ]]; then
        "$BIN/ovsdb-tool" convert "$DB" "$SCHEMA"
        echo "converted database $DB to the installed schema"
    fi

    if pid=$(pid_of ovsdb-server); then
        echo "ovsdb-server already running (pid $pid)"
    else
        "$SBIN/ovsdb-server" "$DB" \
            --remote="punix:$RUNDIR/db.sock" \
            --remote=db:Open_vSwitch,Open_vSwitch,manager_options \
            --pidfile="$RUNDIR/ovsdb-server.pid" \
            -vconsole:emer -vsyslog:err -vfile:info \
            --log-file="$LOGDIR/ovsdb-server.log" --detach --no-chdir
        "$BIN/ovs-vsctl" --db="unix:$RUNDIR/db.sock" --no-wait init
        echo "ovsdb-server started (pid $(pid_of ovsdb-server))"
    fi

    if pid=$(pid_of ovs-vswitchd); then
        echo "ovs-vswitchd already running (pid $pid)"
    else
        "$SBIN/ovs-vswitchd" "unix:$RUNDIR/db.sock" \
            --pidfile="$RUNDIR/ovs-vswitchd.pid" \
            -vconsole:emer -vsyslog:err -vfile:info \
            --log-file="$LOGDIR/ovs-vswitchd.log" --detach --no-chdir
        echo "ovs-vswitchd started (pid $(pid_of ovs-vswitchd))"
    fi
    status
}

stop_one() {
    local name=$1 pid
    if ! pid=$(pid_of "$name"); then
        echo "$name is not running"
        return 0
    fi
    # A clean exit through the daemon's own control socket; SIGTERM if that fails.
    "$BIN/ovs-appctl" -t "$RUNDIR/$name.$pid.ctl" exit >/dev/null 2>&1 \
        || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || { echo "$name stopped (pid $pid)"; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    echo "$name killed (pid $pid did not exit within 5 s)"
}

stop() {
    stop_one ovs-vswitchd
    stop_one ovsdb-server
}

status() {
    local rc=0 pid
    for name in ovsdb-server ovs-vswitchd; do
        if pid=$(pid_of "$name"); then
            echo "$name: running (pid $pid), log $LOGDIR/$name.log"
        else
            echo "$name: not running, log $LOGDIR/$name.log"
            rc=3
        fi
    done
    echo "database: $DB"
    echo "sockets:  $RUNDIR (db.sock, <bridge>.mgmt)"
    if pid=$(pid_of ovs-vswitchd); then
        "$BIN/ovs-appctl" -t "$RUNDIR/ovs-vswitchd.$pid.ctl" version | head -n 1
    fi
    return $rc
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
