#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Sets up (scripts/setup.sh), starts what the tests need, runs every check CI runs:
# contract artifacts match a fresh compile, ruff (lint, and format drift of code), mypy, then
# pytest against real servers.
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not slow" -x (ZG_TEST_WORKERS=0 for -s or pdb)
# ZG_BUILD_IMAGES=1 also builds the container images first, so their test runs.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
step() { printf '\n==> %s\n' "$*"; }

step "NATS and Redis (started from the venv's embedded binaries unless already listening)"
.venv/bin/zg-local-servers ensure

step "compiled contracts match the sources"
.venv/bin/python scripts/compile_contracts.py --check

step "dependency licences (scripts/licenses.py: exceptions in requirements/license-exceptions.toml)"
.venv/bin/python scripts/licenses.py --problems

step "ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .

step "mypy"
.venv/bin/mypy

if [ "${ZG_BUILD_IMAGES:-0}" = 1 ]; then
  # Not by default: about 20 minutes cold on 2 cores (docs/operations.md, Images).
  step "images (scripts/build_images.sh), for tests/integration/ops/test_images.py"
  nice -n 10 scripts/build_images.sh
fi

# One worker per core (pytest-xdist), each file whole on one worker, each worker with its own
# NATS, Redis and anvil: most tests wait on those servers, so two cores run the suite in about
# two thirds of the time. ZG_TEST_WORKERS=0 runs it in this process, one test at a time.
step "pytest (${ZG_TEST_WORKERS:-auto} workers)"
.venv/bin/python -m pytest -n "${ZG_TEST_WORKERS:-auto}" --dist loadfile "$@"
