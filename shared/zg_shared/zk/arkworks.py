# SPDX-License-Identifier: Apache-2.0
"""Optional faster CPU prover: groth16py (arkworks, in Rust) proving with the same snarkjs zkey.

The witness still comes from circom's wasm through snarkjs (groth16py's in-process wasmi
witness is ~10x slower); only the proof is made in Rust. Measured for N=4 on 2 cores:
prove 1.0-1.4 s (snarkjs 4.7-5.4 s), verify 2.5 ms in-process (snarkjs ~0.65 s, a node start).
Proofs verify under the committed verification key and the generated Solidity verifier.

groth16py is not a project dependency yet: `pip install groth16py==0.2.0` to use this.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from zg_shared.zk.models import ChunkInput, Groth16Proof
from zg_shared.zk.snarkjs import CircuitArtifacts, Snarkjs, SnarkjsError, Timings


def _groth16py() -> Any:
    try:
        import groth16py  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("the arkworks prover needs `pip install groth16py==0.2.0`") from exc
    return groth16py


class ArkworksProver:
    """Loads the proving key once (import_zkey takes ~40 ms for N=4), then proves chunks."""

    def __init__(
        self,
        artifacts: CircuitArtifacts,
        snarkjs: Snarkjs | None = None,
        *,
        key_format: Literal["zkey", "groth16py"] = "zkey",
    ) -> None:
        """`key_format="groth16py"`: `artifacts.zkey` is a key saved by groth16py's
        `ProvingKey.save` (the DEV keys of `scripts/zk_setup.py --arkworks-dev`), not a
        snarkjs zkey."""
        missing = artifacts.missing()
        if missing:
            raise FileNotFoundError(
                f"missing circuit artifacts {[str(p) for p in missing]}: run scripts/zk_setup.py"
            )
        g16 = _groth16py()
        self.artifacts = artifacts
        self.snarkjs = snarkjs or Snarkjs()
        self._g16 = g16
        if key_format == "groth16py":
            self._pk = g16.ProvingKey.load(str(artifacts.zkey))
        else:
            self._pk, _ = g16.import_zkey(str(artifacts.zkey))
        # Verify against the committed verification key (what the Solidity verifier holds),
        # not the one derived from the proving key.
        self._verifier = g16.Verifier(g16.VerifyingKey.from_snarkjs_file(str(artifacts.vkey)))
        self.last_timings: Timings | None = None

    def prove_chunk(self, chunk: ChunkInput, *, verify: bool = True) -> Groth16Proof:
        """Witness (node), proof (Rust) and by default a local verification; raises
        zg_shared.zk.WitnessError if the chunk is not provable."""
        if chunk.size != self.artifacts.size:
            raise ValueError(
                f"chunk of size {chunk.size} for a circuit of size {self.artifacts.size}"
            )
        with tempfile.TemporaryDirectory(prefix="zg-prove-") as tmp:
            t0 = time.perf_counter()
            wtns = self.snarkjs.calculate_witness(
                self.artifacts.wasm, chunk, Path(tmp) / "witness.wtns"
            )
            t1 = time.perf_counter()
            blob: bytes = self._g16.prove_wtns(self._pk, str(wtns))
            t2 = time.perf_counter()
        proof = Groth16Proof.from_bytes(blob, chunk.public_inputs())
        verify_s: float | None = None
        if verify:
            if not self.verify(proof):
                raise SnarkjsError("the fresh proof does not verify: zkey and vkey differ?")
            verify_s = time.perf_counter() - t2
        self.last_timings = Timings(witness_s=t1 - t0, prove_s=t2 - t1, verify_s=verify_s)
        return proof

    def verify(self, proof: Groth16Proof) -> bool:
        return bool(self._verifier.verify(proof.to_bytes(), proof.public_signals))
