# SPDX-License-Identifier: Apache-2.0
"""Fast DEV keys for large N and the proof/gas benches: key lookup, the verifier rendered from a
verification key, zk_setup.py's --arkworks-dev usage, the bench tables. No circuit, no proofs."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from zg_shared.zk import dev_keys

ROOT = Path(__file__).resolve().parents[3]


def _load(name: str, path: Path) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


zk_setup = _load("zk_setup", ROOT / "scripts" / "zk_setup.py")
bench_proofs = _load("bench_proofs", ROOT / "bench" / "bench_proofs.py")


def test_snarkjs_keys_prefer_the_committed_ones(tmp_path: Path) -> None:
    committed = tmp_path / "circuits" / "keys" / "settle_batch_4"
    cached = dev_keys.build_dir(4, tmp_path)
    for folder, zkey in ((committed, "settle_batch_4.zkey"), (cached, "settle_batch_4_final.zkey")):
        folder.mkdir(parents=True)
        (folder / zkey).write_bytes(b"z")
        (folder / "verification_key.json").write_text("{}")
    found = dev_keys.snarkjs_keys(4, tmp_path)
    assert found is not None
    assert found.key == committed / "settle_batch_4.zkey"
    assert found.verifier_sol is None  # the committed verifier artifact is used
    shutil.rmtree(committed)
    found = dev_keys.snarkjs_keys(4, tmp_path)
    assert found is not None
    assert found.key_format == "zkey"
    assert found.key == cached / "settle_batch_4_final.zkey"
    assert found.verifier_sol == cached / "SettleBatchVerifier4.sol"
    assert found.artifacts.wasm == cached / "settle_batch_4_js" / "settle_batch_4.wasm"


def test_missing_keys_are_none(tmp_path: Path) -> None:
    assert dev_keys.snarkjs_keys(16, tmp_path) is None
    assert dev_keys.arkworks_dev_keys(16, tmp_path) is None


def test_arkworks_dev_keys_are_groth16py_format(tmp_path: Path) -> None:
    folder = dev_keys.build_dir(64, tmp_path) / "arkworks"
    folder.mkdir(parents=True)
    (folder / "proving_key.g16").write_bytes(b"pk")
    (folder / "verification_key.json").write_text("{}")
    found = dev_keys.arkworks_dev_keys(64, tmp_path)
    assert found is not None
    assert found.key_format == "groth16py"
    assert "DEV" in found.source
    assert found.verifier_sol == folder / "SettleBatchVerifier64.sol"


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
        64, 305647, "arkworks", "groth16py DEV setup", 2, 3.0, 2.7, 11.5, 0.004, 1400.0, 300.0
    )
    skipped = bench_proofs.Row(
        64, 305647, "snarkjs", "-", 0, None, None, None, None, None, None, "no zkey: run it"
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
    monkeypatch.setattr(bench_proofs, "snarkjs_keys", lambda n: None)
    note = bench_proofs.find_keys(64, "snarkjs", "dev")
    assert isinstance(note, str)
    assert "zk_setup.py --size 64" in note
