# SPDX-License-Identifier: Apache-2.0
"""The backend table: which backend a setting picks, what `auto` prefers, and how a prover finds
and checks its keys. Placeholder artifacts in a temporary checkout and cache: no build output,
no proofs (those are in tests/integration/prover and tests/integration/zk)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from zg_prover.backends import BACKENDS, backend_names, choose_backend, select_backend
from zg_prover.config import ProverSettings
from zg_shared.zk.circuit import CircuitBuild
from zg_shared.zk.keys import KeyMismatch

ROOT = Path(__file__).resolve().parents[3]
R1CS_SHA = "ab" * 32


def _checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, recorded: str) -> Path:
    """A checkout with the circuit source and placeholder N=4 keys whose manifest names
    `recorded`, and a cache holding a placeholder compile of r1cs R1CS_SHA."""
    root = tmp_path / "repo"
    (root / "circuits" / "test").mkdir(parents=True)
    shutil.copy(ROOT / "circuits" / "settle_batch.circom", root / "circuits")
    shutil.copy(ROOT / "circuits" / "test" / "settle_batch_4.circom", root / "circuits" / "test")
    keys = root / "circuits" / "keys" / "settle_batch_4"
    keys.mkdir(parents=True)
    (keys / "settle_batch_4.zkey").write_bytes(b"placeholder")
    (keys / "verification_key.json").write_text("{}")
    (keys / "manifest.json").write_text(json.dumps({"r1cs_sha256": recorded}))
    monkeypatch.setenv("ZG_ZK_CACHE", str(tmp_path / "cache"))
    build = CircuitBuild.current(4, root)
    build.wasm.parent.mkdir(parents=True)
    build.wasm.write_bytes(b"wasm")
    build.r1cs.write_bytes(b"r1cs")
    build.stamp.write_text(json.dumps({"r1cs_sha256": R1CS_SHA}))
    return root


def test_the_settings_accept_exactly_the_table() -> None:
    assert backend_names() == ("auto", *(b.name for b in BACKENDS))
    for name in backend_names():
        assert ProverSettings(backend=name).backend == name
    with pytest.raises(ValueError, match="unknown prover backend"):
        ProverSettings(backend="quantum")


def test_auto_takes_the_first_available_row_that_reads_the_keys() -> None:
    ranked = sorted(
        (b for b in BACKENDS if b.auto_priority is not None), key=lambda b: b.auto_priority or 0
    )
    expected = next(b for b in ranked if b.unavailable() is None and "zkey" in b.key_formats)
    assert choose_backend("auto", ["zkey"]) == expected
    # snarkjs cannot read groth16py's DEV keys: auto never picks it for them.
    if choose_backend("auto", ["zkey"]).name != "arkworks":
        with pytest.raises(RuntimeError, match="no installed backend"):
            choose_backend("auto", ["groth16py"])
    else:
        assert choose_backend("auto", ["groth16py"]).name == "arkworks"


def test_the_gpu_row_is_a_slot_that_auto_passes_over() -> None:
    gpu = next(b for b in BACKENDS if b.name == "gpu")
    assert gpu.unavailable() is not None
    assert choose_backend("auto", ["zkey"]).name != "gpu"
    with pytest.raises(RuntimeError, match="PROVER_BACKEND=gpu"):
        choose_backend("gpu", ["zkey"])


def test_a_named_backend_refuses_keys_it_cannot_read() -> None:
    with pytest.raises(RuntimeError, match="cannot prove with"):
        choose_backend("snarkjs", ["groth16py"])
    with pytest.raises(ValueError, match="unknown prover backend"):
        choose_backend("quantum", ["zkey"])


def test_a_named_backend_is_that_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _checkout(tmp_path, monkeypatch, recorded=R1CS_SHA)
    prover = select_backend("snarkjs", [4], root=root)
    assert prover.name == "snarkjs-cpu"
    assert prover.sizes == (4,)
    assert prover.missing_artifacts() == []
    pipeline = prover.pipelines[4]
    assert pipeline.keys.origin == "committed"
    assert pipeline.keys.dev  # the committed N=4 keys come from a dev ceremony
    assert "never for real funds" in pipeline.keys.describe()
    assert pipeline.witness.name == "wasm"  # no native generator in this cache


def test_keys_of_another_circuit_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _checkout(tmp_path, monkeypatch, recorded="cd" * 32)
    with pytest.raises(KeyMismatch, match="made for r1cs cdcdcdcdcdcd"):
        select_backend("snarkjs", [4], root=root)


def test_a_size_without_keys_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _checkout(tmp_path, monkeypatch, recorded=R1CS_SHA)
    with pytest.raises(FileNotFoundError, match=r"no SettleBatch\(16\) keys"):
        select_backend("snarkjs", [16], root=root)
    # DEV keys are only found where allowed (production refuses them by default).
    assert ProverSettings(environment="production").allow_dev_keys is False
    assert ProverSettings(environment="development").allow_dev_keys is True
