# SPDX-License-Identifier: Apache-2.0
"""The production key path end to end at N=4 (scripts/ceremony.py): an operator's phase-1 ptau
checked by its hash, two contributors, a beacon, `zkey verify`, the export into a keys folder,
`zk_setup.py --check` on it, and a proof with the installed keys that verifies.

The phase-1 file stands in for a public ceremony's: the dev 2^15 ptau that `scripts/zk_setup.py
--size 4` leaves in the zk cache (20-40 min of snarkjs on 2 cores, once per machine); without
it the test is skipped, saying so."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.zk.conftest import KEY_A, PROVIDER, ROOT, SIZE, USER, sign
from zg_shared.zk import build_chunk_input
from zg_shared.zk.circuit import sha256_file, zk_cache_dir
from zg_shared.zk.keys import find_keys
from zg_shared.zk.pipeline import ProvingPipeline
from zg_shared.zk.snarkjs import SnarkjsStep

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


def run(*args: str | int | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *(str(a) for a in args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=3000,
    )


@pytest.fixture(scope="module")
def ptau() -> Path:
    """A prepared 2^15 phase-1 file (the operator's, in production), made once per machine."""
    cached = zk_cache_dir() / "ptau" / "pot15_final.ptau"
    if not cached.is_file():
        # Making one takes 20-40 min of snarkjs on 2 cores: too long for every CI run.
        pytest.skip(
            "no prepared 2^15 ptau in the zk cache: `scripts/zk_setup.py --size 4` makes it"
        )
    return cached


def test_two_contributors_and_a_beacon_make_keys_that_prove(ptau: Path, tmp_path: Path) -> None:
    ceremony, keys_dir = tmp_path / "ceremony", tmp_path / "keys"
    script = ROOT / "scripts" / "ceremony.py"
    wrong = run(
        script,
        "init",
        "--size",
        SIZE,
        "--ptau",
        ptau,
        "--ptau-sha256",
        "00" * 32,
        "--dir",
        ceremony,
    )
    assert wrong.returncode == 2
    assert "refusing it" in wrong.stderr
    assert not (ceremony / "ceremony.json").exists()

    steps: list[tuple[str | int | Path, ...]] = [
        ("init", "--size", SIZE, "--ptau", ptau, "--ptau-sha256", sha256_file(ptau)),
        ("contribute", "--name", "alice"),
        ("contribute", "--name", "bob"),
        ("beacon", "--beacon", "0x" + "ab" * 32),
        ("finish", "--keys-dir", keys_dir),
    ]
    for command, *rest in steps:
        done = run(script, command, "--dir", ceremony, *rest)
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
    state = json.loads((ceremony / "ceremony.json").read_text())
    assert [c["name"] for c in state["contributions"]] == ["alice", "bob"]
    assert all(len(c["hash"].split()) == 16 for c in state["contributions"])
    assert state["beacon"]["value"] == "ab" * 32

    check = run(ROOT / "scripts" / "zk_setup.py", "--size", SIZE, "--check", "--keys-dir", keys_dir)
    assert check.returncode == 0, check.stdout + check.stderr
    installed = keys_dir / f"settle_batch_{SIZE}"
    manifest = json.loads((installed / "manifest.json").read_text())
    assert manifest["ptau"]["sha256"] == sha256_file(ptau)
    assert (installed / f"SettleBatchVerifier{SIZE}.sol").is_file()

    keys = find_keys(SIZE, keys_dir=keys_dir, allow_dev=False)
    assert keys is not None
    assert keys.origin == "ceremony"
    assert not keys.dev
    keys.check_circuit()
    pub, reqs = sign(KEY_A, [(USER, PROVIDER, n, 10 * n) for n in (1, 2, 3)])
    chunk = build_chunk_input(reqs, pub, SIZE)
    proof = ProvingPipeline(keys, SnarkjsStep(keys.key, keys.vkey)).prove_chunk(chunk).proof
    assert proof.public_signals == chunk.public_inputs()

    # A key that no longer matches its manifest is caught.
    vkey = installed / "verification_key.json"
    vkey.write_text(vkey.read_text().replace('"nPublic": 7', '"nPublic":  7'))
    tampered = run(
        ROOT / "scripts" / "zk_setup.py", "--size", SIZE, "--check", "--keys-dir", keys_dir
    )
    assert tampered.returncode == 3
