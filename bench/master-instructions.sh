#!/usr/bin/env bash
# bench/master-instructions.sh — how many instructions corral's master runs per request.
#
# Runs the master under valgrind's callgrind (its workers and zygote run natively: they are
# exec'd, and callgrind does not follow exec), loads it with wrk for a warm-up and then for the
# measured interval, and divides the instructions counted in that interval by the requests wrk
# completed. Only user-space instructions are counted (the master's code, hyper, tokio, libc),
# not the kernel's. Unlike req/s on a shared VM, the count repeats to within about 1 % from
# run to run, so it shows what a change to the master's request path saves; it says nothing
# about the workers or the system calls. Results are for comparing builds, not servers.
#
#   bench/master-instructions.sh                      hello, --mpm worker -w 1 --threads 8
#   bench/master-instructions.sh -a flask_json -- --mpm prefork -w 2
#   BIN=/path/to/other/corral bench/master-instructions.sh
#
# Options: -a APP (a module in bench/apps, default hello), -d SECONDS (measured, default 5),
# -o FILE (keep the callgrind profile, for callgrind_annotate). Arguments after -- replace the
# default layout. Needs valgrind (apt-get install valgrind) and wrk; run bench/run.sh
# --setup-only first for the venv and the release build.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${BIN:-$(dirname "$BENCH")/target/release/corral}
VENV=$BENCH/.venv
PORT=${PORT:-18997}
app=hello duration=5 keep=
while getopts "a:d:o:" opt; do
  case $opt in
    a) app=$OPTARG ;;
    d) duration=$OPTARG ;;
    o) keep=$OPTARG ;;
    *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ "${1:-}" = -- ] && shift
layout=("$@")
[ ${#layout[@]} -gt 0 ] || layout=(--mpm worker -w 1 --threads 8)

die() { echo "master-instructions.sh: $*" >&2; exit 1; }
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
taskset -c 0 valgrind --tool=callgrind --trace-children=no \
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

taskset -c 1 wrk -t1 -c64 -d2s "http://127.0.0.1:$PORT/" > /dev/null
callgrind_control -z "$pid" > /dev/null 2>&1
out=$(taskset -c 1 wrk -t1 -c64 -d"${duration}s" "http://127.0.0.1:$PORT/")
callgrind_control -d "$pid" > /dev/null 2>&1
requests=$(echo "$out" | awk '/requests in/ {print $1}')
profile=$(ls -t "$work"/out.* | head -1)
instructions=$(callgrind_annotate "$profile" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
[ -n "$keep" ] && cp "$profile" "$keep"
[ "${requests:-0}" -gt 0 ] || die "wrk completed no requests"
echo "app $app, layout ${layout[*]}: $requests requests, $((instructions / requests)) master instructions per request"
