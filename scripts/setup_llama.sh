#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Optional step of setup.sh: llama-cpp-python and its OpenAI-compatible server, for the tests
# of a real engine behind the gateway (tests/integration/llama). PyPI has only its source, so it
# is built once (530 s of CPU with cmake and g++: ~5 min on 2 idle cores, 40 min on a busy
# machine at nice 10) into a wheel cached outside the repository; later setups, clones and CI
# runs on this machine install that wheel in seconds, with no network.
#   ZG_LLAMA=0            skip this step (the llama tests are then skipped, saying why)
#   ZG_WHEEL_CACHE=DIR    where built wheels are kept (default ~/.cache/zgserve/wheels)
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_VERSION=0.3.36
# PyPI's source release of that version: the build refuses any other file.
LLAMA_SDIST_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
# Portable (no -march=native: the cached wheel must run on any x86-64 that shares the cache)
# and without the multimodal library (not used, and a third of the build).
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"
WHEELS=${ZG_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/zgserve/wheels}
PYTHON=.venv/bin/python

step() { printf '\n==> %s\n' "$*"; }

if [ "${ZG_LLAMA:-1}" = 0 ]; then
  echo "note: ZG_LLAMA=0: llama-cpp-python skipped (tests/integration/llama will be skipped)" >&2
  exit 0
fi
if "$PYTHON" -c "import importlib.metadata as m, sys; sys.exit(m.version('llama-cpp-python') != '$LLAMA_VERSION')" 2>/dev/null; then
  exit 0  # already installed: no network, no build
fi

wheel() { compgen -G "$WHEELS/llama_cpp_python-$LLAMA_VERSION-*.whl" | head -1; }

if [ -z "$(wheel)" ]; then
  for tool in cmake g++; do
    command -v "$tool" >/dev/null 2>&1 || {
      echo "warning: $tool not found: llama-cpp-python not built (tests/integration/llama will be skipped)" >&2
      exit 0
    }
  done
  step "building llama-cpp-python $LLAMA_VERSION from source, once (5-40 min; cached in $WHEELS; ZG_LLAMA=0 skips)"
  mkdir -p "$WHEELS"
  build=$(mktemp -d "$WHEELS/.build.XXXXXX")
  log="$WHEELS/llama-cpp-python-$LLAMA_VERSION.build.log"
  started=$SECONDS
  # Progress every tenth of the compile steps; the whole output goes to the log.
  echo "llama-cpp-python==$LLAMA_VERSION --hash=sha256:$LLAMA_SDIST_SHA256" >"$build/requirement.txt"
  CMAKE_ARGS="$LLAMA_CMAKE_ARGS" nice -n 10 "$PYTHON" -m pip wheel --no-deps -v --require-hashes \
    --no-binary llama-cpp-python --progress-bar off -r "$build/requirement.txt" -w "$build" 2>&1 \
    | tee "$log" | awk 'match($0, /^ *\[[0-9]+\/[0-9]+\]/) {
        split(substr($0, RSTART, RLENGTH), n, /[^0-9]+/); t = int(n[2] * 10 / n[3])
        if (t > last) { last = t; printf "    compiled %d of %d steps\n", n[2], n[3]; fflush() } }' \
    || true
  if compgen -G "$build/llama_cpp_python-*.whl" >/dev/null; then
    # Moved in only once complete: an interrupted build leaves no half wheel behind.
    mv "$build"/llama_cpp_python-*.whl "$WHEELS"/
    echo "    built in $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s"
  else
    echo "warning: building llama-cpp-python failed (log: $log); tests/integration/llama will be skipped" >&2
  fi
  rm -rf "$build"
fi

if [ -n "$(wheel)" ]; then
  step "installing llama-cpp-python $LLAMA_VERSION from the cached wheel ($(wheel))"
  # Only the wheel, with no index: its server's dependencies are in the lock (pyproject's
  # llama-server extra, installed by setup.sh with --require-hashes), and a wheel built here has
  # no hash to lock.
  "$PYTHON" -m pip install --quiet --progress-bar off --no-index --no-deps \
    --find-links "$WHEELS" "llama-cpp-python==$LLAMA_VERSION"
fi
