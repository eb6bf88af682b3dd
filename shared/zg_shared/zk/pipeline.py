# SPDX-License-Identifier: Apache-2.0
"""The one proving pipeline: size check, artifacts, witness, prove, public-signal check, local
verification, timings. What differs between backends is only the proving step (and how it
verifies), passed in as a `ProofStep`; the witness generator is the fastest one built.

A proof that fails local verification is never returned: a key/verifier mismatch is caught
before a settlement transaction pays gas for it.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from zg_shared.cpu import thread_cpu_s
from zg_shared.zk.keys import KeySet
from zg_shared.zk.models import ChunkInput, Groth16Proof
from zg_shared.zk.snarkjs import SnarkjsError
from zg_shared.zk.witness import WitnessGenerator, witness_generator


class ProofStep(Protocol):
    """Proves from a witness file and verifies a proof, with keys it loaded once. (Its name is
    its row's in zg_prover.backends.BACKENDS, the one list of backends.)"""

    def prove(self, wtns: Path, chunk: ChunkInput, workdir: Path) -> Groth16Proof: ...

    def verify(self, proof: Groth16Proof) -> bool: ...


@dataclass(frozen=True)
class Timings:
    witness_s: float
    prove_s: float
    verify_s: float | None
    # CPU seconds of the proving thread and the children it ran over the whole chunk: other
    # chunks proved at the same time in this process are not counted (zg_shared.cpu).
    cpu_s: float


@dataclass(frozen=True)
class ProvenChunk:
    proof: Groth16Proof
    timings: Timings


class ProvingPipeline:
    def __init__(
        self,
        keys: KeySet,
        step: ProofStep,
        witness: WitnessGenerator | None = None,
        *,
        verify: bool = True,
    ) -> None:
        self.keys = keys
        self.step = step
        self.witness = witness or witness_generator(keys.build)
        self.verify_proofs = verify

    @property
    def size(self) -> int:
        return self.keys.size

    def missing(self) -> list[Path]:
        return self.keys.missing()

    def prove_chunk(self, chunk: ChunkInput) -> ProvenChunk:
        """A locally verified proof of `chunk` and what it cost; raises WitnessError if none
        can exist. Safe to call from several threads at once (one chunk each)."""
        if chunk.size != self.keys.size:
            raise ValueError(f"chunk of size {chunk.size} for a circuit of size {self.keys.size}")
        missing = self.missing()
        if missing:
            raise FileNotFoundError(
                f"missing circuit artifacts {[str(p) for p in missing]}: run scripts/zk_setup.py"
            )
        cpu0 = thread_cpu_s()
        with tempfile.TemporaryDirectory(prefix="zg-prove-") as tmp:
            workdir = Path(tmp)
            t0 = time.perf_counter()
            wtns = self.witness.calculate(chunk, workdir / "witness.wtns")
            t1 = time.perf_counter()
            proof = self.step.prove(wtns, chunk, workdir)
            t2 = time.perf_counter()
        if proof.public_signals != chunk.public_inputs():
            raise SnarkjsError("the proof's public signals differ from the chunk's")
        verify_s: float | None = None
        if self.verify_proofs:
            if not self.step.verify(proof):
                raise SnarkjsError("the fresh proof does not verify: proving key and vkey differ?")
            verify_s = time.perf_counter() - t2
        timings = Timings(
            witness_s=t1 - t0, prove_s=t2 - t1, verify_s=verify_s, cpu_s=thread_cpu_s() - cpu0
        )
        return ProvenChunk(proof, timings)
