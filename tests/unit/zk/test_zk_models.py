# SPDX-License-Identifier: Apache-2.0
"""SignedRequest / ChunkInput / Groth16Proof: validation, padding and calldata, no circuit."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from zg_shared.zk import (
    FEE_BITS,
    NONCE_BITS,
    SNARK_FIELD,
    SUBORDER,
    ChunkError,
    ChunkInput,
    Groth16Proof,
    SignedRequest,
    build_chunk_input,
    split_into_chunks,
)

USER = "0x1111111111111111111111111111111111111111"
OTHER = "0x3333333333333333333333333333333333333333"
PROVIDER = "0x2222222222222222222222222222222222222222"
SIGNER = (123, 456)
CIRCUIT_SIGNALS = {
    "user", "provider", "initNonce", "finalNonce", "totalFee", "signerX", "signerY",
    "enabled", "nonce", "fee", "R8x", "R8y", "S",
}  # fmt: skip


def req(nonce: int, fee: int = 10, user: str = USER, provider: str = PROVIDER) -> SignedRequest:
    return SignedRequest(
        user=user, provider=provider, nonce=nonce, fee=fee, r8x=nonce + 1, r8y=nonce + 2, s=7
    )


# ------------------------------------------------------------------ SignedRequest


def test_signed_request_parses_addresses_and_strings() -> None:
    r = SignedRequest.model_validate(
        {"user": USER, "provider": PROVIDER, "nonce": "5", "fee": "0x10", "r8x": 1, "r8y": 2,
         "s": 3}
    )  # fmt: skip
    assert r.user == int(USER, 16)
    assert r.provider == int(PROVIDER, 16)
    assert (r.nonce, r.fee) == (5, 16)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("nonce", 1 << NONCE_BITS),
        ("nonce", -1),
        ("fee", 1 << FEE_BITS),
        ("user", 1 << 160),
        ("r8x", SNARK_FIELD),
        ("s", SUBORDER),
        ("fee", True),
    ],
)
def test_signed_request_rejects_out_of_range(field: str, value: Any) -> None:
    data: dict[str, Any] = {
        "user": USER, "provider": PROVIDER, "nonce": 1, "fee": 1, "r8x": 1, "r8y": 2, "s": 3,
    }  # fmt: skip
    data[field] = value
    with pytest.raises(ValidationError):
        SignedRequest.model_validate(data)


def test_signed_request_from_signature_hex() -> None:
    words = (11, 22, 33)
    sig = "0x" + b"".join(w.to_bytes(32, "big") for w in words).hex()
    r = SignedRequest.from_signature_hex(
        user=USER, provider=PROVIDER, nonce=1, fee=2, signature=sig
    )
    assert (r.r8x, r.r8y, r.s) == words
    with pytest.raises(ValueError, match="96 bytes"):
        SignedRequest.from_signature_hex(
            user=USER, provider=PROVIDER, nonce=1, fee=2, signature=sig[:-2]
        )


# ------------------------------------------------------------------ build_chunk_input


def test_build_chunk_sorts_pads_and_sums() -> None:
    chunk = build_chunk_input([req(9, 30), req(3, 10), req(5, 20)], SIGNER, 4)
    assert chunk.size == 4
    assert chunk.count == 3
    assert chunk.enabled == [1, 1, 1, 0]
    assert chunk.nonce == [3, 5, 9, 0]
    assert chunk.fee == [10, 20, 30, 0]
    assert chunk.r8x == [4, 6, 10, 0]
    assert chunk.r8y == [5, 7, 11, 1]  # padding R8 is the identity point (0, 1)
    assert chunk.s == [7, 7, 7, 0]
    assert chunk.public_inputs() == [
        int(USER, 16), int(PROVIDER, 16), 3, 9, 60, SIGNER[0], SIGNER[1],
    ]  # fmt: skip


def test_build_chunk_full_has_no_padding() -> None:
    chunk = build_chunk_input([req(i) for i in range(1, 5)], SIGNER, 4)
    assert chunk.enabled == [1, 1, 1, 1]
    assert (chunk.init_nonce, chunk.final_nonce, chunk.total_fee) == (1, 4, 40)


def test_build_chunk_total_fee_may_exceed_fee_bits() -> None:
    # Each fee is < 2^128; their sum need not be, and the circuit allows that.
    top = (1 << FEE_BITS) - 1
    chunk = build_chunk_input([req(1, top), req(2, top)], SIGNER, 2)
    assert chunk.total_fee == 2 * top


@pytest.mark.parametrize(
    ("requests", "n", "match"),
    [
        ([], 4, "at least one"),
        ([req(i) for i in range(1, 6)], 4, "do not fit"),
        ([req(1), req(2, user=OTHER)], 4, "same user and provider"),
        ([req(1), req(2, provider=OTHER)], 4, "same user and provider"),
        ([req(1), req(2), req(2)], 4, "appears twice"),
        ([req(1)], 0, "size"),
    ],
)
def test_build_chunk_rejects(requests: list[SignedRequest], n: int, match: str) -> None:
    with pytest.raises(ChunkError, match=match):
        build_chunk_input(requests, SIGNER, n)


def test_build_chunk_rejects_bad_signer() -> None:
    with pytest.raises(ChunkError, match="point"):
        build_chunk_input([req(1)], (1, 2, 3), 4)


def test_circuit_json_uses_signal_names_and_decimal_strings() -> None:
    data = build_chunk_input([req(1, 1 << 100)], SIGNER, 2).to_circuit_json()
    assert set(data) == CIRCUIT_SIGNALS
    assert data["fee"] == [str(1 << 100), "0"]
    assert data["initNonce"] == "1"
    assert data["user"] == str(int(USER, 16))
    # And it reads back.
    assert ChunkInput.model_validate(data).fee == [1 << 100, 0]


def test_chunk_input_rejects_ragged_arrays() -> None:
    data: dict[str, Any] = build_chunk_input([req(1)], SIGNER, 2).to_circuit_json()
    data["S"] = ["0"]
    with pytest.raises(ValidationError, match="one length"):
        ChunkInput.model_validate(data)


def test_split_into_chunks_in_nonce_order() -> None:
    chunks = split_into_chunks([req(n) for n in (7, 1, 5, 3, 9)], 2)
    assert [[r.nonce for r in c] for c in chunks] == [[1, 3], [5, 7], [9]]
    assert split_into_chunks([], 4) == []


# ------------------------------------------------------------------ Groth16Proof

SNARKJS_PROOF: dict[str, Any] = {
    "pi_a": ["1", "2", "1"],
    "pi_b": [["3", "4"], ["5", "6"], ["1", "0"]],
    "pi_c": ["7", "8", "1"],
    "protocol": "groth16",
    "curve": "bn128",
}
PUBLIC = [str(v) for v in range(100, 107)]


def test_proof_snarkjs_round_trip() -> None:
    proof = Groth16Proof.from_snarkjs(SNARKJS_PROOF, PUBLIC)
    assert proof.public_signals == list(range(100, 107))
    assert proof.to_snarkjs() == (SNARKJS_PROOF, PUBLIC)


def test_calldata_reverses_g2_pairs() -> None:
    a, b, c, inputs = Groth16Proof.from_snarkjs(SNARKJS_PROOF, PUBLIC).to_calldata()
    assert a == (1, 2)
    assert b == ((4, 3), (6, 5))
    assert c == (7, 8)
    assert inputs == tuple(range(100, 107))


def test_proof_bytes_round_trip() -> None:
    proof = Groth16Proof.from_snarkjs(SNARKJS_PROOF, PUBLIC)
    blob = proof.to_bytes()
    assert len(blob) == 256
    assert [int.from_bytes(blob[i : i + 32], "big") for i in range(0, 256, 32)] == [
        1, 2, 4, 3, 6, 5, 7, 8,
    ]  # fmt: skip
    assert Groth16Proof.from_bytes(blob, proof.public_signals) == proof


def test_proof_rejects_projective_points_and_wrong_arity() -> None:
    bad = dict(SNARKJS_PROOF, pi_a=["1", "2", "3"])
    with pytest.raises(ValueError, match="affine"):
        Groth16Proof.from_snarkjs(bad, PUBLIC)
    with pytest.raises(ValueError, match="Groth16"):
        Groth16Proof.from_snarkjs(dict(SNARKJS_PROOF, protocol="plonk"), PUBLIC)
    with pytest.raises(ValueError, match="7 public signals"):
        Groth16Proof.from_snarkjs(SNARKJS_PROOF, PUBLIC[:6]).to_calldata()
