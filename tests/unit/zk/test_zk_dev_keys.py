# SPDX-License-Identifier: Apache-2.0
"""Fast DEV keys for large N and the proof/gas benches: key lookup, the verifier rendered from a
verification key, zk_setup.py's --arkworks-dev usage, the bench tables. No circuit, no proofs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from zg_shared.scripts import script_module
from zg_shared.zk import keys
from zg_shared.zk.circuit import CircuitBuild, zk_cache_dir

ROOT = Path(__file__).resolve().parents[3]


zk_setup = script_module(ROOT / "scripts" / "zk_setup.py")
bench_proofs = script_module(ROOT / "bench" / "bench_proofs.py")


def _build(tmp_path: Path, n: int) -> CircuitBuild:
    return CircuitBuild(n, tmp_path / "cache" / f"settle_batch_{n}" / "0123456789abcdef")


def test_committed_keys_come_before_dev_keys(tmp_path: Path) -> None:
    build = _build(tmp_path, 4)
    committed = tmp_path / "circuits" / "keys" / "settle_batch_4"
    for folder, zkey in (
        (committed, "settle_batch_4.zkey"),
        (build.folder, "settle_batch_4_final.zkey"),
    ):
        folder.mkdir(parents=True)
        (folder / zkey).write_bytes(b"z")
        (folder / "verification_key.json").write_text("{}")
    found = keys.committed_keys(4, build, tmp_path)
    assert found is not None
    assert found.origin == "committed"
    assert found.verifier_sol == tmp_path / "contracts/src/verifiers/SettleBatchVerifier4.sol"
    shutil.rmtree(committed)
    assert keys.committed_keys(4, build, tmp_path) is None
    found = keys.dev_keys(4, build)
    assert found is not None
    assert (found.key_format, found.origin) == ("zkey", "dev")
    assert found.key == build.folder / "settle_batch_4_final.zkey"
    assert found.verifier_sol == build.folder / "SettleBatchVerifier4.sol"
    assert found.missing() == [build.wasm]


def test_missing_keys_are_none(tmp_path: Path) -> None:
    assert keys.dev_keys(16, _build(tmp_path, 16)) is None
    assert keys.ceremony_keys(16, tmp_path / "ceremony", _build(tmp_path, 16)) is None


def test_groth16py_dev_keys_say_they_are_dev(tmp_path: Path) -> None:
    build = _build(tmp_path, 64)
    build.dev_keys.mkdir(parents=True)
    (build.dev_keys / "proving_key.g16").write_bytes(b"pk")
    (build.dev_keys / "verification_key.json").write_text("{}")
    found = keys.dev_keys(64, build)
    assert found is not None
    assert found.key_format == "groth16py"
    assert found.dev
    assert "never for real funds" in found.describe()
    assert found.verifier_sol == build.dev_keys / "SettleBatchVerifier64.sol"


def test_the_cache_is_outside_the_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZG_ZK_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere")
    assert zk_cache_dir() == Path("/somewhere/zgserve/zk")
    monkeypatch.setenv("ZG_ZK_CACHE", "/elsewhere")
    assert zk_cache_dir() == Path("/elsewhere")
    # One folder per circuit version: a changed source is another folder.
    assert CircuitBuild.current(4, ROOT).folder.parent == Path("/elsewhere/settle_batch_4")


def test_the_committed_verifier_is_the_rendering_of_the_committed_key() -> None:
    """What `zk_setup.py --check` compares: the committed verifier is exactly our template
    rendered with the committed verification key (no third-party template text)."""
    vkey = json.loads(
        (ROOT / "circuits" / "keys" / "settle_batch_4" / "verification_key.json").read_text()
    )
    committed = (ROOT / "contracts" / "src" / "verifiers" / "SettleBatchVerifier4.sol").read_text()
    assert zk_setup.verifier_source(vkey, 4) == committed
    assert "GPL" not in committed
    assert "snarkJS" not in committed


@pytest.mark.parametrize(
    "extra",
    [["--install"], ["--check"], ["--ptau", "x.ptau"], ["--ptau", "x.ptau", "--zkey", "z"]],
)
def test_arkworks_dev_excludes_ceremony_options(extra: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        zk_setup.parse_args(["--size", "64", "--arkworks-dev", *extra])
    assert exc.value.code == 2


def test_arkworks_dev_parses() -> None:
    args = zk_setup.parse_args(["--size", "64", "--arkworks-dev", "--verifier-artifact"])
    assert args.arkworks_dev
    assert args.verifier_artifact


def test_bench_proofs_table_and_skips() -> None:
    row = bench_proofs.Row(
        64, 305647, "arkworks+native", "dev groth16py", 2, 3.0, 0.2, 11.5, 0.004, 0.36, 1400.0, 30.0
    )
    skipped = bench_proofs.Row(
        64,
        305647,
        "snarkjs+wasm",
        "-",
        0,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        "no zkey: run it",
    )
    table = bench_proofs.render([row, skipped])
    assert "305,647" in table
    assert "11.50" in table
    assert "no zkey: run it" in table
    args = bench_proofs.parse_args(["--sizes", "4", "--backends", "arkworks", "--json"])
    assert (args.sizes, args.backends, args.json, args.make_keys) == (
        [4],
        ["arkworks"],
        True,
        "dev",
    )
    with pytest.raises(SystemExit):
        bench_proofs.parse_args(["--reps", "0"])


def test_bench_proofs_skips_snarkjs_without_a_zkey(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_proofs, "find_key_set", lambda n: None)
    note = bench_proofs.find_keys(64, "snarkjs", "dev")
    assert isinstance(note, str)
    assert "zk_setup.py --size 64" in note
