# SPDX-License-Identifier: Apache-2.0
"""Compiled contract artifacts (ABI + bytecode) shipped with the package.

They are produced by `scripts/compile_contracts.py` from the pinned solc; CI checks that the
committed files match a fresh compile.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

ARTIFACT_DIR = Path(__file__).parent / "artifacts"


class ContractArtifact(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    contract_name: str
    abi: list[dict[str, Any]]
    bytecode: str


@cache
def load_artifact(name: str, folder: Path = ARTIFACT_DIR) -> ContractArtifact:
    path = folder / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"no artifact {path}: run scripts/compile_contracts.py")
    raw = json.loads(path.read_text())
    return ContractArtifact(
        contract_name=raw["contractName"], abi=raw["abi"], bytecode=raw["bytecode"]
    )
