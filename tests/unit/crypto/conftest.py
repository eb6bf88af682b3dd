# SPDX-License-Identifier: Apache-2.0
"""Reference vectors computed by circomlibjs (node) during the test session itself."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from zg_shared.crypto.field import P

ROOT = Path(__file__).resolve().parents[3]
JS = ROOT / "tests" / "js"
N_KEYS = 200


def run_node(script: str, stdin: str) -> str:
    if shutil.which("node") is None or not (ROOT / "node_modules" / "circomlibjs").is_dir():
        pytest.skip("node or node_modules/circomlibjs is missing (run npm ci)")
    proc = subprocess.run(
        ["node", str(JS / script)],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=240,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"node {script} failed: {proc.stderr[-2000:]}")
    return proc.stdout


@dataclass(frozen=True)
class SignVector:
    prv: bytes
    msg: int
    a: tuple[int, int]
    a_packed: bytes
    r8: tuple[int, int]
    r8_packed: bytes
    s: int


@dataclass(frozen=True)
class Vectors:
    sign: list[SignVector]
    poseidon: list[tuple[list[int], int]]


def _pair(values: list[str]) -> tuple[int, int]:
    return int(values[0]), int(values[1])


@pytest.fixture(scope="session")
def circomlib() -> Vectors:
    """200 random keys and messages signed by circomlibjs, and Poseidon of 1..16 inputs."""
    rng = random.Random(20261125)
    keys = [rng.randbytes(32) for _ in range(N_KEYS)]
    # Messages: mostly uniform, plus the edges of the field.
    msgs = [rng.randrange(P) for _ in range(N_KEYS - 4)] + [0, 1, P - 1, P - 2]
    inputs: list[list[int]] = []
    for n in range(1, 17):
        for k in range(12 if n <= 6 else 2):
            edge = [0, 1, P - 1][k % 3]
            values = [rng.randrange(P) for _ in range(n)]
            if k < 3:
                values[0] = edge
            inputs.append(values)
    request = {
        "sign": [{"prv": k.hex(), "msg": str(m)} for k, m in zip(keys, msgs, strict=True)],
        "poseidon": [[str(v) for v in row] for row in inputs],
    }
    out: dict[str, Any] = json.loads(run_node("circomlib_vectors.mjs", json.dumps(request)))
    sign = [
        SignVector(
            prv=k,
            msg=m,
            a=_pair(o["a"]),
            a_packed=bytes.fromhex(o["aPacked"]),
            r8=_pair(o["r8"]),
            r8_packed=bytes.fromhex(o["r8Packed"]),
            s=int(o["s"]),
        )
        for k, m, o in zip(keys, msgs, out["sign"], strict=True)
    ]
    assert all(o["valid"] for o in out["sign"])
    assert out["poseidon"] == out["poseidonReference"]
    poseidon = [(row, int(h)) for row, h in zip(inputs, out["poseidon"], strict=True)]
    return Vectors(sign=sign, poseidon=poseidon)


VerifyCase = tuple[int, tuple[int, int], int, tuple[int, int]]


def _js_verify(cases: list[VerifyCase]) -> list[bool]:
    """circomlibjs verifyPoseidon on (msg, R8, S, A) tuples."""
    request = {
        "verify": [
            {"msg": str(m), "r8": [str(r[0]), str(r[1])], "s": str(s), "a": [str(a[0]), str(a[1])]}
            for m, r, s, a in cases
        ]
    }
    result: list[bool] = json.loads(run_node("circomlib_vectors.mjs", json.dumps(request)))[
        "verify"
    ]
    return result


def _js_unpack(packed: list[bytes]) -> list[tuple[int, int] | None]:
    request = {"unpack": [p.hex() for p in packed]}
    out = json.loads(run_node("circomlib_vectors.mjs", json.dumps(request)))["unpack"]
    return [None if p is None else _pair(p) for p in out]


@pytest.fixture(scope="session")
def node() -> Callable[[str, str], str]:
    """Runs a script from tests/js with the given stdin and returns its stdout."""
    return run_node


@pytest.fixture(scope="session")
def js_verify() -> Callable[[list[VerifyCase]], list[bool]]:
    return _js_verify


@pytest.fixture(scope="session")
def js_unpack() -> Callable[[list[bytes]], list[tuple[int, int] | None]]:
    return _js_unpack


@pytest.fixture(scope="session")
def js_poseidon_tables() -> dict[str, Any]:
    tables: dict[str, Any] = json.loads(run_node("poseidon_constants.mjs", ""))
    return tables
