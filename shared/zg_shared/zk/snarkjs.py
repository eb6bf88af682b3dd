# SPDX-License-Identifier: Apache-2.0
"""The snarkjs CLI: wasm witness generation, Groth16 proving and verification.

Each call is a node subprocess: witness (~0.5 s for N=4), prove (~4 s for N=4 on 2 cores).
Blocking by design; an asyncio caller runs it in a thread (`asyncio.to_thread`). The pipeline
around it (zg_shared.zk.pipeline) is shared with the other backends.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zg_shared.cpu import run_child
from zg_shared.zk.circuit import REPO_ROOT
from zg_shared.zk.models import ChunkInput, Groth16Proof

# "Error in template SettleBatch_177 line: 135": the numeric suffix is circom's instance id.
_FAILED_AT = re.compile(r"Error in template (\w+?)_\d+ line: (\d+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


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

    def _run(self, *args: str | os.PathLike[str], error: type[SnarkjsError] = SnarkjsError) -> str:
        cmd = [self.node, str(self.cli), *(str(a) for a in args)]
        try:
            proc = run_child(
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
            proc = run_child(
                cmd, capture_output=True, text=True, timeout=self.timeout_s, check=False
            )
        # snarkjs prints "OK!" on success and "Invalid proof" (exit 1) otherwise.
        return proc.returncode == 0 and "OK!" in proc.stdout


class SnarkjsStep:
    """The proving step of the reference route: `snarkjs groth16 prove` on a zkey and
    `snarkjs groth16 verify` (a node process each)."""

    def __init__(self, zkey: Path, vkey: Path, snarkjs: Snarkjs | None = None) -> None:
        self.zkey = zkey
        self.vkey = vkey
        self.snarkjs = snarkjs or Snarkjs()

    def prove(self, wtns: Path, chunk: ChunkInput, workdir: Path) -> Groth16Proof:
        return self.snarkjs.prove(self.zkey, wtns, workdir)

    def verify(self, proof: Groth16Proof) -> bool:
        return self.snarkjs.verify(self.vkey, proof)


def _summary(output: str, limit: int = 400) -> str:
    """The most telling part of snarkjs/circom output: assertion lines first."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    picked = [ln for ln in lines if "Assert Failed" in ln or "Error" in ln] or lines[-3:]
    text = " | ".join(picked)
    return text[:limit]
