# SPDX-License-Identifier: Apache-2.0
"""Proving backends behind one interface.

A backend proves one chunk (a `ChunkInput` for SettleBatch(N)) and verifies the proof locally
before returning it: a proof that fails verification is never returned, so never published.
Backends are blocking (CPU- or GPU-bound); the service runs them in a worker thread.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Protocol

from zg_shared.zk import ChunkInput, CircuitArtifacts, Groth16Proof, Snarkjs
from zg_shared.zk.arkworks import ArkworksProver


class ProverBackend(Protocol):
    name: str
    circuit_size: int
    artifacts: CircuitArtifacts  # the keys it proves with (their manifest lies beside them)

    def prove(self, chunk: ChunkInput) -> Groth16Proof:
        """A locally verified proof; raises WitnessError if no proof can exist for `chunk`."""
        ...

    def missing_artifacts(self) -> list[Path]: ...


class SnarkjsBackend:
    """snarkjs on the CPU: works on every machine with node."""

    name = "snarkjs-cpu"

    def __init__(self, artifacts: CircuitArtifacts, snarkjs: Snarkjs | None = None) -> None:
        self.artifacts = artifacts
        self.circuit_size = artifacts.size
        self._snarkjs = snarkjs or Snarkjs()

    def prove(self, chunk: ChunkInput) -> Groth16Proof:
        return self._snarkjs.prove_chunk(self.artifacts, chunk, verify=True)

    def missing_artifacts(self) -> list[Path]:
        return self.artifacts.missing()


class ArkworksBackend:
    """groth16py (arkworks, Rust) on the CPU: about 4x faster than snarkjs, same keys."""

    name = "arkworks-cpu"

    def __init__(self, artifacts: CircuitArtifacts) -> None:
        self.artifacts = artifacts
        self.circuit_size = artifacts.size
        self._prover = ArkworksProver(artifacts)

    def prove(self, chunk: ChunkInput) -> Groth16Proof:
        return self._prover.prove_chunk(chunk, verify=True)

    def missing_artifacts(self) -> list[Path]:
        return self.artifacts.missing()


def arkworks_available() -> bool:
    return importlib.util.find_spec("groth16py") is not None


def cuda_available() -> bool:
    """A CUDA device is visible (the GPU backend's precondition)."""
    return Path("/dev/nvidia0").exists() or Path("/proc/driver/nvidia/version").exists()


def select_backend(kind: str, size: int, root: Path | None = None) -> ProverBackend:
    """The backend for `kind`. "auto" takes the fastest one installed: arkworks when groth16py
    is there, else snarkjs. (A GPU backend is not shipped yet, see docs/prover.md.)"""
    artifacts = (
        CircuitArtifacts.committed(size) if root is None else CircuitArtifacts.committed(size, root)
    )
    if kind == "auto":
        kind = "arkworks" if arkworks_available() else "snarkjs"
    if kind == "arkworks":
        if not arkworks_available():
            raise RuntimeError("PROVER_BACKEND=arkworks needs `pip install groth16py`")
        return ArkworksBackend(artifacts)
    if kind == "snarkjs":
        return SnarkjsBackend(artifacts)
    raise ValueError(f"unknown prover backend {kind!r}")
