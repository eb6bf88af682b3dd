#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Locks the Python dependencies: requirements/*.txt pin every package, with the sha256 of every
# file PyPI serves for that version, for any platform and Python >= 3.11 (uv's universal
# resolution: the slim images run 3.11, the CUDA image 3.12). setup.sh, CI and the Dockerfile
# install only from them, with --require-hashes.
#
#   scripts/lock.sh                         # after editing pyproject.toml: locks what changed,
#                                           # keeps every other pin
#   scripts/lock.sh --upgrade               # every package to its newest allowed version
#   scripts/lock.sh --upgrade-package NAME  # only NAME (and what it needs)
#
# Then scripts/setup.sh installs the new lock (it reinstalls only when a lock file changed).
#   requirements/dev.txt      everything: the project, all extras, the dev tools, pip/setuptools/wheel
#   requirements/runtime.txt  the services' images: the project with the gateway-fast extra
#   requirements/prover.txt   the prover images: runtime plus the arkworks extra
# runtime and prover are locked within dev's pins, so all three agree on every version.
set -euo pipefail
cd "$(dirname "$0")/.."

UV=${UV:-.venv/bin/uv}
[ -x "$UV" ] || UV=$(command -v uv) || {
  echo "error: uv not found: run scripts/setup.sh first (it installs the locked uv)" >&2
  exit 1
}
compile() {
  "$UV" pip compile --quiet --universal --python-version 3.11 --generate-hashes \
    --custom-compile-command "scripts/lock.sh" pyproject.toml requirements/build.in "$@"
}
compile --all-extras -o requirements/dev.txt "$@"
compile --extra gateway-fast -c requirements/dev.txt -o requirements/runtime.txt
compile --extra gateway-fast --extra arkworks -c requirements/dev.txt -o requirements/prover.txt
echo "locked: $(grep -c '==' requirements/dev.txt) packages in requirements/dev.txt" \
  "($(grep -c '==' requirements/runtime.txt) runtime, $(grep -c '==' requirements/prover.txt) prover)"
