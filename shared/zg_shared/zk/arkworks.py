# SPDX-License-Identifier: Apache-2.0
"""The faster CPU proving step: groth16py (arkworks, in Rust), with a snarkjs zkey or the
groth16py-saved DEV keys of `scripts/zk_setup.py --arkworks-dev`.

Measured for N=4 on 2 cores: prove 1.0-1.4 s (snarkjs 4.7-5.4 s), verify 2.5 ms in-process
(snarkjs ~0.65 s, a node start). Proofs verify under the verification key the Solidity
verifier holds (the pipeline checks each one against it).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from zg_shared.zk.keys import KeySet
from zg_shared.zk.models import ChunkInput, Groth16Proof


def groth16py_available() -> bool:
    return importlib.util.find_spec("groth16py") is not None


def _groth16py() -> Any:
    try:
        import groth16py  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("the arkworks prover needs `pip install groth16py==0.2.0`") from exc
    return groth16py


class ArkworksStep:
    """Loads the proving key once (N=4 zkey: ~40 ms; N=64 DEV key: tens of seconds), then
    proves witnesses with it."""

    def __init__(self, keys: KeySet) -> None:
        g16 = _groth16py()
        self._g16 = g16
        if keys.key_format == "groth16py":
            self._pk = g16.ProvingKey.load(str(keys.key))
        else:
            self._pk, _ = g16.import_zkey(str(keys.key))
        # The key the Solidity verifier holds, not one derived from the proving key.
        self._verifier = g16.Verifier(g16.VerifyingKey.from_snarkjs_file(str(keys.vkey)))

    def prove(self, wtns: Path, chunk: ChunkInput, workdir: Path) -> Groth16Proof:
        blob: bytes = self._g16.prove_wtns(self._pk, str(wtns))
        return Groth16Proof.from_bytes(blob, chunk.public_inputs())

    def verify(self, proof: Groth16Proof) -> bool:
        return bool(self._verifier.verify(proof.to_bytes(), proof.public_signals))
