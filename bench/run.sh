#!/usr/bin/env bash
# bench/run.sh — the one command of corral's benchmark suite.
#
# Owns the set-up: system packages (wrk, Apache + mod_wsgi) through apt-get where it can, the
# peers in bench/.venv (bench/requirements.txt, then uWSGI, which is built from source), the
# release build of corral against the same CPython. Then it hands every argument to the Python
# harness (bench/harness/), which runs the scenario matrix and writes bench/results/.
#
#   bench/run.sh                       set up, then run the full matrix (long: see README.md)
#   bench/run.sh --smoke               set up, then one tiny run (hello, corral vs granian, 2 s)
#   bench/run.sh -s hello -S corral,granian -d 2 -r 1     any harness options (--help lists them)
#   bench/run.sh --setup-only          only install and build
#   bench/run.sh --no-setup ...        skip the set-up (the venv must exist)
#
# Environment: BENCH_PYTHON (interpreter for the venv and for corral; default python3 on PATH),
# BENCH_NO_APT=1 (never call apt-get). A missing optional piece (Apache, mod_wsgi, uWSGI) is noted in
# bench/.data/setup-notes.txt and the harness skips that server with the note; wrk is required.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
VENV=$BENCH/.venv
DATA=$BENCH/.data
NOTES=$DATA/setup-notes.txt

setup=1
setup_only=0
args=()
for a in "$@"; do
  case $a in
    --no-setup) setup=0 ;;
    --setup-only) setup_only=1 ;;
    *) args+=("$a") ;;
  esac
done

say() { echo "bench/run.sh: $*" >&2; }
note() { say "NOTE: $*"; echo "$*" >> "$NOTES"; }

as_root() {  # runs a command as root (directly, or with non-interactive sudo); fails otherwise
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo -n "$@"; else return 1; fi
}

install_system_packages() {
  local want=()
  command -v wrk >/dev/null || want+=(wrk)
  [ -x /usr/sbin/apache2 ] || want+=(apache2)
  [ -f /usr/lib/apache2/modules/mod_wsgi.so ] || want+=(libapache2-mod-wsgi-py3)
  [ ${#want[@]} -gt 0 ] || return 0
  if [ "${BENCH_NO_APT:-0}" = 1 ] || ! command -v apt-get >/dev/null; then
    note "apt-get not used (BENCH_NO_APT or no apt-get): missing ${want[*]}"
    return 0
  fi
  # Debian starts a freshly installed apache2 on port 80 unless policy-rc.d forbids it: forbid it
  # for the duration of the install (only if no policy is in place, and remove only our own).
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [ ! -e $policy ] && as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"; then
    made_policy=1
  fi
  say "apt-get install ${want[*]}"
  if ! { as_root env DEBIAN_FRONTEND=noninteractive timeout 600 apt-get update -qq &&
         as_root env DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends "${want[@]}"; } \
       > "$DATA/apt.log" 2>&1; then
    note "apt-get install ${want[*]} failed (see bench/.data/apt.log)"
  fi
  [ $made_policy = 1 ] && as_root rm -f $policy
  return 0
}

make_venv() {
  local py
  py=$("${BENCH_PYTHON:-python3}" -c 'import sys; print(sys.executable)')
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV with $py"
    "$py" -m venv "$VENV"
  fi
  if [ ! -f "$VENV/.installed" ] || [ "$BENCH/requirements.txt" -nt "$VENV/.installed" ]; then
    say "pip install -r bench/requirements.txt"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$BENCH/requirements.txt"
    touch "$VENV/.installed"
  fi
  if [ ! -x "$VENV/bin/uwsgi" ] && [ ! -f "$VENV/.uwsgi-failed" ]; then
    say "pip install uwsgi (builds from source, ~1 min)"
    if ! "$VENV/bin/pip" install -q --disable-pip-version-check "uwsgi==2.0.31" > "$DATA/uwsgi-build.log" 2>&1; then
      touch "$VENV/.uwsgi-failed"
      note "uwsgi: pip install failed (see bench/.data/uwsgi-build.log; delete bench/.venv/.uwsgi-failed to retry)"
    fi
  fi
}

build_corral() {
  local py
  py=$("${BENCH_PYTHON:-python3}" -c 'import sys; print(sys.executable)')  # as in the main README
  say "cargo build --release (PYO3_PYTHON=$py)"
  (cd "$ROOT" && PYO3_PYTHON=$py cargo build --release --quiet --bin corral)
}

mkdir -p "$DATA"
if [ $setup = 1 ]; then
  : > "$NOTES"
  install_system_packages
  command -v wrk >/dev/null || { say "wrk is required and could not be installed (see $NOTES)"; exit 1; }
  make_venv
  build_corral
fi
[ $setup_only = 1 ] && exit 0
[ -x "$VENV/bin/python" ] || { say "no $VENV: run without --no-setup first"; exit 1; }
export PYTHONPATH=$BENCH${PYTHONPATH:+:$PYTHONPATH}
exec "$VENV/bin/python" -m harness ${args[@]+"${args[@]}"}
