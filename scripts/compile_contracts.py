# SPDX-License-Identifier: Apache-2.0
"""Compile the Solidity contracts with the pinned solc (npm `solc`) into ABI + bytecode artifacts.

    python scripts/compile_contracts.py          # write shared/zg_shared/chain/artifacts/*.json
    python scripts/compile_contracts.py --check  # exit 1 if the committed artifacts are stale

The artifacts are committed so that the services run without node; CI runs --check so that
they can never drift from the sources.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOLCJS = ROOT / "node_modules" / ".bin" / "solcjs"
SHIPPED = ROOT / "shared" / "zg_shared" / "chain" / "artifacts"
TEST_ONLY = ROOT / "tests" / "artifacts"
# (source file, contract name, artifact folder): test-only contracts stay out of the package.
CONTRACTS: list[tuple[str, str, Path]] = [
    ("contracts/src/Serving.sol", "Serving", SHIPPED),
    ("contracts/src/verifiers/SettleBatchVerifier4.sol", "SettleBatchVerifier4", SHIPPED),
    ("contracts/test/ReentrantRefunder.sol", "ReentrantRefunder", TEST_ONLY),
    ("contracts/test/ConstantVerifier.sol", "ConstantVerifier", TEST_ONLY),
]
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
}


def standard_json_input() -> dict[str, Any]:
    return {
        "language": "Solidity",
        "sources": {src: {"content": (ROOT / src).read_text()} for src, _, _ in CONTRACTS},
        "settings": SETTINGS,
    }


def compile_all() -> dict[str, dict[str, Any]]:
    # stdout goes to a file: node exits before a pipe has taken all of a large (>64 KiB)
    # output, which arrived cut short; writes to a file are synchronous.
    with tempfile.TemporaryFile(mode="w+") as out:
        proc = subprocess.run(
            [str(SOLCJS), "--standard-json", "--base-path", ".", "--include-path", "node_modules"],
            input=json.dumps(standard_json_input()),
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            check=False,
        )
        out.seek(0)
        stdout = out.read()
    # solcjs prints warnings before the JSON document on stdout.
    start = stdout.find("{")
    if proc.returncode != 0 or start < 0:
        sys.exit(f"solcjs failed ({proc.returncode}):\n{proc.stderr}\n{stdout}")
    output = json.loads(stdout[start:])
    errors = [e for e in output.get("errors", []) if e["severity"] == "error"]
    for diagnostic in output.get("errors", []):
        print(diagnostic["formattedMessage"], file=sys.stderr)
    if errors:
        sys.exit(f"{len(errors)} compile error(s)")
    version = subprocess.run(
        [str(SOLCJS), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    artifacts = {}
    for src, name, _ in CONTRACTS:
        compiled = output["contracts"][src][name]
        artifacts[name] = {
            "contractName": name,
            "sourceName": src,
            "compiler": {"solc": version, "settings": SETTINGS},
            "abi": compiled["abi"],
            "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
        }
    return artifacts


def render(artifact: dict[str, Any]) -> str:
    return json.dumps(artifact, indent=1, sort_keys=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if committed artifacts differ")
    args = parser.parse_args()
    artifacts = compile_all()
    folders = {name: folder for _, name, folder in CONTRACTS}
    stale = []
    for name, artifact in artifacts.items():
        path = folders[name] / f"{name}.json"
        text = render(artifact)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.relative_to(ROOT))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print("stale artifacts (run scripts/compile_contracts.py):", *stale, sep="\n  ")
        return 1
    if args.check:
        print(f"{len(artifacts)} artifacts match a fresh compile")
    return 0


if __name__ == "__main__":
    sys.exit(main())
