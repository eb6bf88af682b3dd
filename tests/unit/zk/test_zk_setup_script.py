# SPDX-License-Identifier: Apache-2.0
"""scripts/zk_setup.py's pure parts: r1cs header, ptau sizing, key sanity, verifier rendering."""

from __future__ import annotations

import copy
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from zg_shared.scripts import script_module

ROOT = Path(__file__).resolve().parents[3]


zk_setup = script_module(ROOT / "scripts" / "zk_setup.py")


def fake_r1cs(constraints: int, wires: int = 50, pub: int = 7, outs: int = 0) -> bytes:
    prime = (
        21888242871839275222246405745257275088548364400416034343698204186575808495617
    ).to_bytes(32, "little")
    counts = struct.pack("<IIIIQI", wires, outs, pub, 6, 99, constraints)
    header = struct.pack("<I", 32) + prime + counts
    other = b"\x00" * 16
    body = struct.pack("<IQ", 2, len(other)) + other + struct.pack("<IQ", 1, len(header)) + header
    return b"r1cs" + struct.pack("<II", 1, 2) + body


def test_reads_the_r1cs_header_after_other_sections(tmp_path: Path) -> None:
    path = tmp_path / "c.r1cs"
    path.write_bytes(fake_r1cs(19027, wires=19008))
    info = zk_setup.read_r1cs_header(path)
    assert (info.constraints, info.wires, info.public_inputs, info.outputs) == (19027, 19008, 7, 0)


def test_rejects_a_file_that_is_not_r1cs(tmp_path: Path) -> None:
    path = tmp_path / "c.r1cs"
    path.write_bytes(b"nope" + b"\x00" * 20)
    with pytest.raises(zk_setup.SetupError):
        zk_setup.read_r1cs_header(path)


@pytest.mark.parametrize(
    ("constraints", "power"),
    [(4696, 13), (8184, 13), (8185, 14), (19027, 15), (76351, 17), (10, 8)],
)
def test_ptau_power_leaves_room_for_the_public_inputs(constraints: int, power: int) -> None:
    # snarkjs needs 2^power >= constraints + public inputs + outputs + 1.
    assert zk_setup.R1csInfo(constraints, 0, 7, 0, 6).ptau_power() == power


GOOD_VK: dict[str, Any] = {
    "protocol": "groth16",
    "curve": "bn128",
    "nPublic": 7,
    "vk_alpha_1": ["5", "6", "1"],
    "vk_gamma_2": [zk_setup.G2_GENERATOR_X, ["7", "8"], ["1", "0"]],
    "vk_delta_2": [["9", "10"], ["11", "12"], ["1", "0"]],
    "IC": [[str(i), str(i + 1), "1"] for i in range(8)],
}


def test_check_vkey_accepts_a_contributed_key() -> None:
    zk_setup.check_vkey(GOOD_VK)


@pytest.mark.parametrize(
    "breakage",
    ["infinity", "alpha_is_generator", "delta_is_gamma", "n_public"],
)
def test_check_vkey_refuses_degenerate_keys(breakage: str) -> None:
    vk = copy.deepcopy(GOOD_VK)
    if breakage == "infinity":
        vk["IC"][3] = ["0", "1", "0"]
    elif breakage == "alpha_is_generator":
        vk["vk_alpha_1"] = ["1", "2", "1"]
    elif breakage == "delta_is_gamma":
        vk["vk_delta_2"] = vk["vk_gamma_2"]
    else:
        vk["nPublic"] = 6
    with pytest.raises(zk_setup.SetupError):
        zk_setup.check_vkey(vk)


COMMITTED_VKEY = ROOT / "circuits" / "keys" / "settle_batch_4" / "verification_key.json"


def test_verifier_source_implements_the_interface_for_any_size() -> None:
    vk = json.loads(COMMITTED_VKEY.read_text())
    out = zk_setup.verifier_source(vk, 64, "DEV keys somewhere")
    assert out.startswith("// SPDX-License-Identifier: Apache-2.0\n")
    assert "pragma solidity 0.8.30;" in out
    assert 'import {ISettlementVerifier} from "../interfaces/ISettlementVerifier.sol";' in out
    assert "contract SettleBatchVerifier64 is ISettlementVerifier {" in out
    assert "from\n///        DEV keys somewhere with" in out
    assert "uint256[7] calldata publicInputs" in out
    assert all(line == line.rstrip() for line in out.splitlines())


def test_verifier_source_fails_loudly_on_a_bad_key() -> None:
    vk = json.loads(COMMITTED_VKEY.read_text())
    with pytest.raises(zk_setup.SetupError, match="IC points"):
        zk_setup.verifier_source({**vk, "IC": vk["IC"][:-1]}, 4)


@pytest.mark.parametrize(
    "argv",
    [["--size", "0"], ["--contributions", "-1"], ["--beacon", "xyz"], ["--zkey", "f.zkey"],
     ["--check", "--install"]],
)  # fmt: skip
def test_bad_usage_exits_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        zk_setup.parse_args(argv)
    assert exit_.value.code == 2


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        zk_setup.parse_args(["--help"])
    assert exit_.value.code == 0
    assert "--ptau" in capsys.readouterr().out
