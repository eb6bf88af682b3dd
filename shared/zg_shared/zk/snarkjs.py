# SPDX-License-Identifier: Apache-2.0
"""Witness generation, Groth16 proving and local verification through the snarkjs CLI.

Each call is a node subprocess: witness (~0.5 s for N=4), prove (~2 s for N=4 on 2 cores).
Blocking by design; an asyncio caller runs it in a thread (`asyncio.to_thread`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zg_shared.zk.models import ChunkInput, Groth16Proof

# "Error in template SettleBatch_177 line: 135": the numeric suffix is circom's instance id.
_FAILED_AT = re.compile(r"Error in template (\w+?)_\d+ line: (\d+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

# shared/zg_shared/zk/snarkjs.py -> repository root.
REPO_ROOT = Path(__file__).resolve().parents[3]


class SnarkjsError(RuntimeError):
    """snarkjs failed for a reason other than the circuit rejecting the input."""

    def __init__(self, message: str, *, stderr: str = "") -> None:
        super().__init__(message)
        self.stderr = stderr


class WitnessError(SnarkjsError):
    """The circuit rejected the input: some constraint (signature, nonce order, fee sum...)
    does not hold, so no proof exists for it. `template` and `line` say which assertion
    failed, when circom's witness generator told (e.g. "SettleBatch", 135)."""

    def __init__(self, message: str, *, stderr: str = "") -> None:
        super().__init__(message, stderr=stderr)
        found = _FAILED_AT.search(stderr)
        self.template: str | None = found.group(1) if found else None
        self.line: int | None = int(found.group(2)) if found else None


@dataclass(frozen=True)
class CircuitArtifacts:
    """What proving and verifying SettleBatch(N) needs."""

    size: int
    wasm: Path  # circom's witness generator
    zkey: Path  # Groth16 proving key (final, after the phase-2 contributions)
    vkey: Path  # verification_key.json

    @classmethod
    def committed(cls, size: int, root: Path = REPO_ROOT) -> CircuitArtifacts:
        """The keys committed under circuits/keys/ and the wasm that scripts/zk_setup.py
        compiles into .cache/zk/ (cheap to rebuild, so not committed)."""
        keys = root / "circuits" / "keys" / f"settle_batch_{size}"
        build = root / ".cache" / "zk" / f"settle_batch_{size}"
        return cls(
            size=size,
            wasm=build / f"settle_batch_{size}_js" / f"settle_batch_{size}.wasm",
            zkey=keys / f"settle_batch_{size}.zkey",
            vkey=keys / "verification_key.json",
        )

    def missing(self) -> list[Path]:
        return [p for p in (self.wasm, self.zkey, self.vkey) if not p.is_file()]


@dataclass(frozen=True)
class Timings:
    witness_s: float
    prove_s: float
    verify_s: float | None


class Snarkjs:
    """Runs the pinned snarkjs (node_modules/.bin/snarkjs) in subprocesses."""

    def __init__(
        self,
        *,
        cli: Path | str | None = None,
        node: str | None = None,
        timeout_s: float = 600.0,
    ) -> None:
        default_cli = REPO_ROOT / "node_modules" / "snarkjs" / "build" / "cli.cjs"
        self.cli = Path(cli) if cli is not None else default_cli
        self.node = node or shutil.which("node") or "node"
        self.timeout_s = timeout_s
        self.last_timings: Timings | None = None

    def _run(self, *args: str | os.PathLike[str], error: type[SnarkjsError] = SnarkjsError) -> str:
        cmd = [self.node, str(self.cli), *(str(a) for a in args)]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=self.timeout_s, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise SnarkjsError(f"snarkjs {args[0]} timed out after {self.timeout_s} s") from exc
        # snarkjs sometimes reports an error and still exits 0: look at the output too.
        output = _ANSI.sub("", proc.stdout + proc.stderr)
        if proc.returncode != 0 or "[ERROR]" in output or "Error:" in output:
            raise error(
                f"snarkjs {' '.join(str(a) for a in args[:2])} failed ({proc.returncode}): "
                f"{_summary(output)}",
                stderr=output,
            )
        return proc.stdout

    def calculate_witness(
        self, wasm: Path, inputs: ChunkInput | Mapping[str, Any], out: Path
    ) -> Path:
        """Run the circuit's witness generator; raises WitnessError if a constraint fails."""
        data = inputs.to_circuit_json() if isinstance(inputs, ChunkInput) else dict(inputs)
        input_path = out.with_suffix(".input.json")
        input_path.write_text(json.dumps(data))
        self._run("wtns", "calculate", wasm, input_path, out, error=WitnessError)
        return out

    def prove(self, zkey: Path, wtns: Path, workdir: Path) -> Groth16Proof:
        proof_path, public_path = workdir / "proof.json", workdir / "public.json"
        self._run("groth16", "prove", zkey, wtns, proof_path, public_path)
        return Groth16Proof.from_snarkjs(
            json.loads(proof_path.read_text()), json.loads(public_path.read_text())
        )

    def verify(self, vkey: Path, proof: Groth16Proof) -> bool:
        with tempfile.TemporaryDirectory(prefix="zg-verify-") as tmp:
            proof_json, public_json = proof.to_snarkjs()
            proof_path, public_path = Path(tmp) / "proof.json", Path(tmp) / "public.json"
            proof_path.write_text(json.dumps(proof_json))
            public_path.write_text(json.dumps(public_json))
            cmd = [
                self.node,
                str(self.cli),
                "groth16",
                "verify",
                str(vkey),
                str(public_path),
                str(proof_path),
            ]
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=self.timeout_s, check=False
            )
        # snarkjs prints "OK!" on success and "Invalid proof" (exit 1) otherwise.
        return proc.returncode == 0 and "OK!" in proc.stdout

    def prove_chunk(
        self, artifacts: CircuitArtifacts, chunk: ChunkInput, *, verify: bool = True
    ) -> Groth16Proof:
        """Witness, proof and (by default) a local verification for one chunk.

        The local verify catches a key/verifier mismatch before a settlement transaction
        pays gas for it. Raises WitnessError if the chunk is not provable.
        """
        if chunk.size != artifacts.size:
            raise ValueError(f"chunk of size {chunk.size} for a circuit of size {artifacts.size}")
        missing = artifacts.missing()
        if missing:
            raise FileNotFoundError(
                f"missing circuit artifacts {[str(p) for p in missing]}: run scripts/zk_setup.py"
            )
        with tempfile.TemporaryDirectory(prefix="zg-prove-") as tmp:
            workdir = Path(tmp)
            t0 = time.perf_counter()
            wtns = self.calculate_witness(artifacts.wasm, chunk, workdir / "witness.wtns")
            t1 = time.perf_counter()
            proof = self.prove(artifacts.zkey, wtns, workdir)
            t2 = time.perf_counter()
        verify_s: float | None = None
        if proof.public_signals != chunk.public_inputs():
            raise SnarkjsError("the proof's public signals differ from the chunk's")
        if verify:
            if not self.verify(artifacts.vkey, proof):
                raise SnarkjsError("the fresh proof does not verify: zkey and vkey differ?")
            verify_s = time.perf_counter() - t2
        self.last_timings = Timings(witness_s=t1 - t0, prove_s=t2 - t1, verify_s=verify_s)
        return proof


def _summary(output: str, limit: int = 400) -> str:
    """The most telling part of snarkjs/circom output: assertion lines first."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    picked = [ln for ln in lines if "Assert Failed" in ln or "Error" in ln] or lines[-3:]
    text = " | ".join(picked)
    return text[:limit]
