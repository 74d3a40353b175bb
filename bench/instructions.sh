#!/usr/bin/env bash
# bench/instructions.sh — how many instructions corral's master and its workers run per request.
#
# Runs corral under valgrind's callgrind, following its children (the zygote is exec'd, the
# workers are forked from it), loads it with wrk for a warm-up and then for the measured
# interval, and divides the instructions each process ran in that interval by the requests
# wrk completed. Only user-space instructions are counted (corral's code, hyper, tokio,
# CPython, libc), not the kernel's: the system calls and the switches between processes are
# not in these numbers. Unlike req/s on a shared VM, the counts repeat to within about 1 %
# from run to run, so they show what a change to the request path saves. Results are for
# comparing builds, not servers. A large memcpy is counted a byte at a time (glibc copies
# big blocks with `rep movsb`, whose every iteration callgrind counts): for bodies of several
# KiB, compare builds with perf's CPU samples and alternating timed runs instead.
#
#   bench/instructions.sh                      hello, --mpm worker -w 1 --threads 8
#   bench/instructions.sh -a flask_json -- --mpm prefork -w 2
#   BIN=/path/to/other/corral bench/instructions.sh
#   bench/instructions.sh -a echo -s lua/post64k.lua        the echo64k scenario
#
# Options: -a APP (a module in bench/apps, default hello), -d SECONDS (measured, default 5),
# -s SCRIPT (a wrk Lua script, relative to bench/), -o DIR (keep the callgrind profiles
# there, for callgrind_annotate). Arguments after -- replace
# the default layout. Needs valgrind (apt-get install valgrind) and wrk; run bench/run.sh
# --setup-only first for the venv and the release build.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${BIN:-$(dirname "$BENCH")/target/release/corral}
VENV=$BENCH/.venv
PORT=${PORT:-18997}
app=hello duration=5 keep= script=()
while getopts "a:d:o:s:" opt; do
  case $opt in
    a) app=$OPTARG ;;
    d) duration=$OPTARG ;;
    s) script=(-s "$BENCH/$OPTARG") ;;
    o) keep=$OPTARG ;;
    *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ "${1:-}" = -- ] && shift
layout=("$@")
[ ${#layout[@]} -gt 0 ] || layout=(--mpm worker -w 1 --threads 8)

die() { echo "instructions.sh: $*" >&2; exit 1; }
command -v valgrind >/dev/null || die "valgrind is not installed (apt-get install valgrind)"
command -v wrk >/dev/null || die "wrk is not installed (bench/run.sh --setup-only installs it)"
[ -x "$BIN" ] || die "no corral binary at $BIN (bench/run.sh --setup-only builds it)"
[ -d "$VENV" ] || die "no $VENV (bench/run.sh --setup-only makes it)"

work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

cd "$BENCH/apps"
taskset -c 0 valgrind --tool=callgrind --trace-children=yes \
  --callgrind-out-file="$work/out.%p" \
  "$BIN" serve "$app:application" --virtualenv "$VENV" --log-level warning \
  -b "127.0.0.1:$PORT" "${layout[@]}" > "$work/server.log" 2>&1 &
pid=$!
up=0
for _ in $(seq 300); do
  curl -sf -o /dev/null "http://127.0.0.1:$PORT/" && { up=1; break; }
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.2
done
[ $up = 1 ] || { cat "$work/server.log" >&2; die "corral did not start under valgrind"; }

# The master is $pid; its child is the zygote (not measured), whose children are the workers.
zygote=$(pgrep -P "$pid" | head -1)
workers=$(pgrep -P "$zygote" | tr '\n' ' ')
[ -n "$workers" ] || die "no worker processes found under the zygote ($zygote)"

taskset -c 1 wrk -t1 -c64 -d2s "${script[@]}" "http://127.0.0.1:$PORT/" > /dev/null
for p in $pid $workers; do callgrind_control -z "$p" > /dev/null 2>&1; done
out=$(taskset -c 1 wrk -t1 -c64 -d"${duration}s" "${script[@]}" "http://127.0.0.1:$PORT/")
for p in $pid $workers; do callgrind_control -d "$p" > /dev/null 2>&1; done
requests=$(echo "$out" | awk '/requests in/ {print $1}')
[ "${requests:-0}" -gt 0 ] || die "wrk completed no requests"

total() {  # instructions in the newest dump of process $1
  local profile
  profile=$(ls -t "$work"/out."$1".* 2>/dev/null | head -1)
  [ -n "$profile" ] || die "callgrind wrote no profile for process $1"
  callgrind_annotate "$profile" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
}
master=$(total "$pid")
in_workers=0
for p in $workers; do in_workers=$((in_workers + $(total "$p"))); done
[ -n "$keep" ] && mkdir -p "$keep" && cp "$work"/out.*.* "$keep"/
echo "app $app, layout ${layout[*]}: $requests requests; instructions per request:" \
  "master $((master / requests)), workers $((in_workers / requests))"
