# SPDX-License-Identifier: Apache-2.0
"""Fixtures for the settlement circuit: circomlibjs signatures, the compiled N=4 circuit, the
committed keys. Signing goes through node (tests/js/zk/sign.js), the reference that the
circuit has to agree with."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from zg_shared.zk import SignedRequest, Snarkjs
from zg_shared.zk.keys import KeySet, find_keys

ROOT = Path(__file__).resolve().parents[3]
SIGN_JS = ROOT / "tests" / "js" / "zk" / "sign.js"
SIZE = 4
USER = 0x1111111111111111111111111111111111111111
PROVIDER = 0x2222222222222222222222222222222222222222
KEY_A = "0001020304050607080900010203040506070809000102030405060708090001"
KEY_B = "1112131415161718191a1112131415161718191a1112131415161718191a1112"

Point = tuple[int, int]


def sign(
    key: str, messages: Sequence[tuple[int, int, int, int]]
) -> tuple[Point, list[SignedRequest]]:
    """Sign (user, provider, nonce, fee) tuples with circomlibjs; returns the public key and
    the signed requests. Fees may exceed the model's range: those come back unvalidated."""
    payload = {
        "key": key,
        "messages": [
            {"user": hex(u), "provider": hex(p), "nonce": str(n), "fee": str(f)}
            for u, p, n, f in messages
        ],
    }
    proc = subprocess.run(
        ["node", str(SIGN_JS)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        timeout=60,
    )
    out = json.loads(proc.stdout)
    pub = (int(out["pub"][0]), int(out["pub"][1]))
    requests = [
        SignedRequest.model_construct(
            user=u,
            provider=p,
            nonce=n,
            fee=f,
            r8x=int(sig["r8x"]),
            r8y=int(sig["r8y"]),
            s=int(sig["s"]),
        )
        for (u, p, n, f), sig in zip(messages, out["signatures"], strict=True)
    ]
    return pub, requests


@pytest.fixture(scope="session")
def signed() -> tuple[Point, list[SignedRequest]]:
    """Key A's public key and its signatures for nonces 1..6 (fee = 100 * nonce)."""
    return sign(KEY_A, [(USER, PROVIDER, n, 100 * n) for n in range(1, 7)])


@pytest.fixture(scope="session")
def wasm() -> Path:
    """The N=4 witness generator, compiled (and cached) by scripts/zk_setup.py."""
    proc = subprocess.run(
        [sys.executable, "scripts/zk_setup.py", "--size", str(SIZE), "--compile-only", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    found = find_keys(SIZE, root=ROOT, allow_dev=False)
    assert found is not None
    return found.build.wasm


@pytest.fixture(scope="session")
def artifacts(wasm: Path) -> KeySet:
    """The committed N=4 keys and the compiled circuit they belong to."""
    found = find_keys(SIZE, root=ROOT, allow_dev=False)
    assert found is not None
    assert not found.missing(), f"committed keys missing: {found.missing()}"
    found.check_circuit()
    return found


@pytest.fixture(scope="session")
def snarkjs() -> Snarkjs:
    return Snarkjs()
