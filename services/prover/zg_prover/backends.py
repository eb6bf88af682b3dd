# SPDX-License-Identifier: Apache-2.0
"""Proving backends: one table, from which the settings' allowed values and `auto`'s order come.

A backend is only a proving step (zg_shared.zk.pipeline.ProofStep); the pipeline around it
(witness, checks, local verification, timings) is the same for all. Adding a backend is one row
here and the module with its step.

The GPU row is a slot: no GPU prover is built (none was lent to this project's machines), so
it is never available and `auto` passes over it; a GPU step fills it in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from zg_shared.zk.arkworks import ArkworksStep, groth16py_available
from zg_shared.zk.circuit import REPO_ROOT
from zg_shared.zk.keys import KeyFormat, KeySet, find_keys
from zg_shared.zk.models import ChunkInput
from zg_shared.zk.pipeline import ProofStep, ProvenChunk, ProvingPipeline
from zg_shared.zk.snarkjs import SnarkjsStep


@dataclass(frozen=True)
class Backend:
    name: str  # the PROVER_BACKEND value
    label: str  # what events and metrics report, e.g. "arkworks-cpu"
    auto_priority: int | None  # `auto` takes the available backend with the lowest; None: never
    unavailable: Callable[[], str | None]  # why it cannot run here, or None
    key_formats: frozenset[KeyFormat]
    make_step: Callable[[KeySet], ProofStep]


def _no_gpu_step(keys: KeySet) -> ProofStep:
    raise RuntimeError("no GPU proving step is built")


def _arkworks_missing() -> str | None:
    return None if groth16py_available() else "needs `pip install groth16py` (extra: arkworks)"


BACKENDS: tuple[Backend, ...] = (
    Backend(
        "gpu",
        "gpu-cuda",
        0,
        lambda: "no GPU proving step is built yet (docs/prover.md)",
        frozenset({"zkey"}),
        _no_gpu_step,
    ),
    Backend(
        "arkworks",
        "arkworks-cpu",
        10,
        _arkworks_missing,
        frozenset({"zkey", "groth16py"}),
        ArkworksStep,
    ),
    Backend(
        "snarkjs",
        "snarkjs-cpu",
        20,
        lambda: None,
        frozenset({"zkey"}),
        lambda keys: SnarkjsStep(keys.key, keys.vkey),
    ),
)
AUTO = "auto"


def backend_names() -> tuple[str, ...]:
    """The PROVER_BACKEND values: `auto` and every row's name."""
    return (AUTO, *(b.name for b in BACKENDS))


def choose_backend(kind: str, key_formats: Iterable[KeyFormat]) -> Backend:
    """The row for `kind`; for `auto`, the available row with the lowest priority that reads
    every key format in use. Raises ValueError (unknown) or RuntimeError (cannot run here)."""
    formats = set(key_formats)
    if kind == AUTO:
        for backend in sorted(
            (b for b in BACKENDS if b.auto_priority is not None),
            key=lambda b: b.auto_priority or 0,
        ):
            if backend.unavailable() is None and formats <= backend.key_formats:
                return backend
        raise RuntimeError(f"no installed backend reads {sorted(formats)} keys")
    for backend in BACKENDS:
        if backend.name == kind:
            why = backend.unavailable()
            if why is not None:
                raise RuntimeError(f"PROVER_BACKEND={kind}: {why}")
            if not formats <= backend.key_formats:
                raise RuntimeError(
                    f"PROVER_BACKEND={kind} cannot prove with {sorted(formats)} keys"
                )
            return backend
    raise ValueError(f"unknown prover backend {kind!r} (one of {', '.join(backend_names())})")


class Prover:
    """One backend's pipelines, one per circuit size it has keys for."""

    def __init__(self, backend: Backend, keys: Iterable[KeySet]) -> None:
        self.name = backend.label
        self.pipelines = {k.size: ProvingPipeline(k, backend.make_step(k)) for k in keys}

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(sorted(self.pipelines))

    @property
    def dev_keys(self) -> bool:
        return any(p.keys.dev for p in self.pipelines.values())

    def prove(self, chunk: ChunkInput) -> ProvenChunk:
        pipeline = self.pipelines.get(chunk.size)
        if pipeline is None:
            raise ValueError(f"no keys for circuit size {chunk.size} (have {self.sizes})")
        return pipeline.prove_chunk(chunk)

    def missing_artifacts(self) -> list[Path]:
        return [p for pipeline in self.pipelines.values() for p in pipeline.missing()]


def select_backend(
    kind: str,
    sizes: Iterable[int],
    *,
    root: Path | None = None,
    keys_dir: Path | None = None,
    allow_dev: bool = True,
    cache: Path | None = None,
) -> Prover:
    """A prover for `kind` with keys for each size (ceremony keys in `keys_dir`, else the
    committed ones, else DEV keys cached on this machine when `allow_dev`), each checked
    against the compiled circuit."""
    found = []
    for n in sizes:
        keys = find_keys(
            n, root=root or REPO_ROOT, cache=cache, keys_dir=keys_dir, allow_dev=allow_dev
        )
        if keys is None:
            raise FileNotFoundError(
                f"no SettleBatch({n}) keys: run `scripts/zk_setup.py --size {n} --arkworks-dev` "
                "(DEV keys) or install a ceremony's keys (docs/circuit.md)"
            )
        keys.check_circuit()
        found.append(keys)
    return Prover(choose_backend(kind, (k.key_format for k in found)), found)
