#!/usr/bin/env bash
# Snort 3 on the IDS host, for topo/netns_topo.sh, topo/mininet_topo.py and by hand: the rule file
# users edit (snort-rules/migrate.rules) is exported for Snort 3 into LOGDIR, then Snort runs with
# the documented command (docs/analyzers.md; the tests run the same one, topo/lib/snort.ts):
#
#   snort -c snort-rules/snort3.lua -R LOGDIR/migrate.snort3.rules --daq afpacket -i IFACE \
#         -A alert_unixsock -l LOGDIR -k none
#
# Alerts go to LOGDIR/snort_alert: give the controller "analyzers": {"snort": {"logDir": "LOGDIR"}}.
#
# Usage: topo/snort.sh run LOGDIR IFACE [more snort args, e.g. -z 2 --daq-var fanout_type=hash]
#            (in the IDS host's namespace; foreground; output to LOGDIR/snort.log, pid in LOGDIR/snort.pid)
#        topo/snort.sh reload LOGDIR    re-export the rules, SIGHUP Snort, wait for "reload complete"
#        topo/snort.sh stop LOGDIR
#        topo/snort.sh command LOGDIR IFACE   print the snort command line `run` executes
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RULES="${RULES:-$ROOT/snort-rules/migrate.rules}"
# The no-match marker (docs/analyzers.md): exported with the rules so a segment no rule matches is
# forwarded at once instead of after verdictTimeoutMs. NO_MATCH_RULES= (empty) leaves it out.
NO_MATCH_RULES="${NO_MATCH_RULES-$ROOT/snort-rules/no-match.rules}"

# The documented command, in the array CMD (LOGDIR IFACE).
set_command() {
  CMD=(snort -c "$ROOT/snort-rules/snort3.lua" -R "$1/migrate.snort3.rules" --daq afpacket -i "$2"
    -A alert_unixsock -l "$1" -k none)
}

export_rules() {
  # shellcheck disable=SC2086  # NO_MATCH_RULES: one path or nothing
  node "$ROOT/bin/tcp-migrate.mjs" rules export --for snort3 -o "$1/migrate.snort3.rules" "$RULES" $NO_MATCH_RULES
}

pid_of() {
  local p; p=$(cat "$1/snort.pid" 2>/dev/null || true)
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null && echo "$p"
}

case "${1:-}" in
  command) [ $# -ge 3 ] || { sed -n '11,16p' "$0"; exit 2; }; set_command "$2" "$3"; echo "${CMD[*]}" ;;
  run)
    [ $# -ge 3 ] || { sed -n '11,16p' "$0"; exit 2; }
    logdir=$2 iface=$3; shift 3
    mkdir -p "$logdir"
    command -v snort >/dev/null || { echo "snort not found: sudo bash topo/install-snort.sh" >&2; exit 1; }
    export_rules "$logdir"
    echo $$ > "$logdir/snort.pid"
    exec >"$logdir/snort.log" 2>&1
    # stdbuf: progress lines ("++ [0] eth0", "== reload complete") reach the log as printed.
    set_command "$logdir" "$iface"
    exec stdbuf -oL -eL "${CMD[@]}" "$@"
    ;;
  reload)
    [ $# -ge 2 ] || { sed -n '11,16p' "$0"; exit 2; }
    pid=$(pid_of "$2") || { echo "no Snort running for $2 (no live pid in $2/snort.pid)" >&2; exit 1; }
    export_rules "$2"   # a rule error stops here, naming file:line: option; Snort keeps its rules
    # Follow the log from its current end (by line number: no race with Snort's first line).
    from=$(( $(wc -l < "$2/snort.log") + 1 ))
    exec 3< <(timeout 60 tail -n "+$from" -F "$2/snort.log" 2>/dev/null)
    kill -HUP "$pid"
    while read -r line <&3; do
      case "$line" in
        *"reload complete"*) echo "Snort reloaded $RULES"; exit 0 ;;
        *"reload failed"*|FATAL*|ERROR*) echo "Snort reload failed ($line); its old rules stay in force, see $2/snort.log" >&2; exit 1 ;;
      esac
    done
    echo "Snort did not finish the reload within 60 s, see $2/snort.log" >&2; exit 1
    ;;
  stop)
    [ $# -ge 2 ] || { sed -n '11,16p' "$0"; exit 2; }
    if pid=$(pid_of "$2"); then kill "$pid"; fi
    rm -f "$2/snort.pid"
    ;;
  *) sed -n '2,16p' "$0"; exit 2 ;;
esac
