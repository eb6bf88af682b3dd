#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs everything zgserve needs on a fresh machine: a Python venv with the project and its
# dev tools, and the pinned npm tools (solc, anvil, circom, snarkjs). Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
need() { command -v "$1" >/dev/null 2>&1 || { echo "error: $1 is required ($2)" >&2; exit 1; }; }

PYTHON=${PYTHON:-python3}
need "$PYTHON" "Python >= 3.11"
need node "Node.js >= 18, for solc, anvil, circom and snarkjs"
need npm "npm, to install the pinned JavaScript tools"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "error: Python >= 3.11 is required, found $("$PYTHON" --version)" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  step "creating .venv"
  "$PYTHON" -m venv .venv
fi
# Every package from the lock, each file checked against its sha256 (scripts/lock.sh makes the
# lock); then the project itself, editable, built by the locked setuptools. Skipped when the lock,
# the build inputs and the C source are as at the last install: a rerun costs nothing here.
stamp=.venv/.zg-installed
inputs=$(cat requirements/dev.txt pyproject.toml setup.py shared/zg_shared/crypto/_fast.c | sha256sum)
if [ "$(cat "$stamp" 2>/dev/null)" != "$inputs" ]; then
  step "installing Python packages from requirements/dev.txt (hash-checked)"
  .venv/bin/python -m pip install --quiet --progress-bar off --require-hashes -r requirements/dev.txt
  .venv/bin/python -m pip install --quiet --progress-bar off --no-deps --no-build-isolation -e .
  echo "$inputs" >"$stamp"
else
  step "Python packages: as locked in requirements/dev.txt (nothing to do)"
fi

# Debian packages some tests use (each such test skips, saying why, without them): installed
# when running as root with apt-get, else a note.
debian_packages() { # what for, then the packages; the commands to look for are in $commands
  local why=$1 missing=0 cmd
  shift
  for cmd in $commands; do command -v "$cmd" >/dev/null 2>&1 || missing=1; done
  [ "$missing" = 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    step "installing Debian's $* ($why)"
    apt-get install -y --no-install-recommends "$@" >/dev/null \
      || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "$@" >/dev/null; } \
      || echo "warning: $* not installed; the $why is skipped" >&2
  else
    echo "note: install Debian's $* for the $why (it is skipped without them)" >&2
  fi
}
# The marketplace page is tested in headless Chromium.
commands="chromium chromedriver" debian_packages "browser test" chromium chromium-driver
# Prometheus scrapes the running services, and promtool unit-tests the alert rules.
commands="prometheus promtool" debian_packages "Prometheus and alert-rule tests" prometheus

# circom's native witness generator (~10x faster than its wasm) is built with these.
missing_native=""
command -v g++ >/dev/null 2>&1 || missing_native="g++"
for header in gmp.h nlohmann/json.hpp; do
  [ -n "$(ls /usr/include/$header /usr/include/*/$header 2>/dev/null)" ] \
    || missing_native="$missing_native $header"
done
command -v nasm >/dev/null 2>&1 || missing_native="$missing_native nasm"
if [ -n "$missing_native" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    step "installing Debian's g++, libgmp-dev, nlohmann-json3-dev, nasm (native witness generator)"
    pkgs="g++ make libgmp-dev nlohmann-json3-dev nasm"
    apt-get install -y --no-install-recommends $pkgs >/dev/null \
      || { apt-get update >/dev/null && apt-get install -y --no-install-recommends $pkgs >/dev/null; } \
      || echo "warning: not installed; the prover uses circom's wasm witness generator" >&2
  else
    echo "note: install g++ libgmp-dev nlohmann-json3-dev nasm for the native witness generator" >&2
  fi
fi

# Optional, outside the lock: llama-cpp-python for the real-engine tests.
scripts/setup_llama.sh

# npm ci starts from an empty node_modules (~30 s): only when package-lock.json changed.
npm_stamp=node_modules/.zg-installed
npm_inputs=$(sha256sum <package-lock.json)
if [ "$(cat "$npm_stamp" 2>/dev/null)" != "$npm_inputs" ]; then
  step "installing pinned npm tools (npm ci)"
  npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
  echo "$npm_inputs" >"$npm_stamp"
else
  step "npm tools: as locked in package-lock.json (nothing to do)"
fi

step "compiling the settlement circuit for the committed N=4 keys (cached in ~/.cache/zgserve/zk)"
.venv/bin/python scripts/zk_setup.py --size 4 --compile-only

step "ready: $(.venv/bin/python --version), node $(node --version), anvil $(node_modules/.bin/anvil --version | head -1)"
