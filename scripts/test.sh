#!/usr/bin/env bash
# corral's test command: installs what the tests need and runs every test.
#
#   scripts/test.sh            full suite on the default Python (python3 on PATH), then a smoke
#                              test on every other CPython 3.11–3.13 that pyenv has
#   scripts/test.sh --quick    full suite on the default Python only
#
# What it does: makes a virtualenv per Python under .venv-test-X.Y with tests/requirements.txt
# (pytest, Flask, Django), builds corral against that Python (PYO3_PYTHON; one target dir per
# version, because the binary links one libpython), runs the Rust unit tests, then the pytest
# integration suite, which starts the real binary on real sockets.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

quick=0
[ "${1:-}" = "--quick" ] && quick=1

# A real interpreter path (not a pyenv shim): the binary links its libpython via rpath.
real_python() { "$1" -c 'import sys; print(sys.executable)'; }

prepare_venv() { # python -> venv dir
  local py=$1 ver venv
  ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  venv="$root/.venv-test-$ver"
  if [ ! -x "$venv/bin/pytest" ] || [ tests/requirements.txt -nt "$venv/.installed" ]; then
    "$py" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
    touch "$venv/.installed"
  fi
  echo "$venv"
}

build_for() { # python target_dir -> path of the corral binary
  local py=$1 target=$2
  PYO3_PYTHON=$py CARGO_TARGET_DIR=$target cargo build --quiet --bin corral >&2
  echo "$target/debug/corral"
}

main_py=$(real_python "${PYTHON:-python3}")
echo "== corral tests with $("$main_py" --version) ($main_py)"
venv=$(prepare_venv "$main_py")
export PYO3_PYTHON=$main_py
bin=$(build_for "$main_py" "$root/target")

echo "== Rust unit tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace
fi

echo "== integration tests (pytest, real binary, real sockets)"
CORRAL_BIN=$bin VIRTUAL_ENV=$venv "$venv/bin/pytest" -q tests

[ $quick = 1 ] && exit 0

# Smoke test on the other CPython versions pyenv provides.
if command -v pyenv >/dev/null 2>&1; then
  for minor in 3.11 3.12 3.13; do
    prefix=$(pyenv prefix "$(pyenv versions --bare | grep -E "^${minor}\.[0-9]+$" | tail -n1)" 2>/dev/null) || continue
    py="$prefix/bin/python3"
    [ -x "$py" ] || continue
    [ "$(real_python "$py")" = "$main_py" ] && continue
    echo "== smoke test with $("$py" --version)"
    v=$(prepare_venv "$py")
    b=$(build_for "$py" "$root/target/py$minor")
    CORRAL_BIN=$b VIRTUAL_ENV=$v "$v/bin/pytest" -q -m smoke tests
  done
fi
