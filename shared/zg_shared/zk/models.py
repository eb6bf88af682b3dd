# SPDX-License-Identifier: Apache-2.0
"""Settlement chunks for the SettleBatch circuit: signed requests in, circuit input and
calldata out.

The circuit (circuits/settle_batch.circom) proves, for one user and one provider, that every
enabled entry is signed by the account's BabyJubJub key over Poseidon(user, provider, nonce,
fee), that nonces strictly increase, and that totalFee is their sum. This module builds its
input from signed requests and turns its proof into the arguments of
ISettlementVerifier.verifyProof / Serving.settleFees.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

# BN254's scalar field: every circuit signal and public input lives in it.
SNARK_FIELD = 21888242871839275222246405745257275088548364400416034343698204186575808495617
# Order of BabyJubJub's prime subgroup; the circuit rejects S >= this (CompConstant in circomlib).
SUBORDER = 2736030358979909402780800718157159386076813972158567259200215660948447373041
NONCE_BITS = 64
FEE_BITS = 128
ADDRESS_BITS = 160
N_PUBLIC = 7
# Padding entries: the circomlib verifier still runs on them (with enabled = 0), and these
# values keep it satisfiable (R8 = the identity point, S = 0).
PAD_R8X = 0
PAD_R8Y = 1
PAD_S = 0


class ChunkError(ValueError):
    """The requests cannot form one settlement chunk."""


def _to_int(value: Any) -> Any:
    """Accept ints, decimal strings and 0x-hex strings (addresses, JSON from snarkjs)."""
    if isinstance(value, bool):
        raise ValueError("expected an integer, got a bool")
    if isinstance(value, str):
        text = value.strip()
        return int(text, 16) if text.lower().startswith("0x") else int(text, 10)
    if isinstance(value, bytes):
        return int.from_bytes(value, "big")
    return value


Address = Annotated[int, BeforeValidator(_to_int), Field(ge=0, lt=1 << ADDRESS_BITS)]
Nonce = Annotated[int, BeforeValidator(_to_int), Field(ge=0, lt=1 << NONCE_BITS)]
Fee = Annotated[int, BeforeValidator(_to_int), Field(ge=0, lt=1 << FEE_BITS)]
FieldElement = Annotated[int, BeforeValidator(_to_int), Field(ge=0, lt=SNARK_FIELD)]
Scalar = Annotated[int, BeforeValidator(_to_int), Field(ge=0, lt=SUBORDER)]
Bit = Annotated[int, BeforeValidator(_to_int), Field(ge=0, le=1)]


class SignedRequest(BaseModel):
    """One request as the user signed it: EdDSA-Poseidon over M = Poseidon(user, provider,
    nonce, fee), signature (R8x, R8y, S)."""

    model_config = ConfigDict(frozen=True)

    user: Address
    provider: Address
    nonce: Nonce
    fee: Fee
    r8x: FieldElement
    r8y: FieldElement
    s: Scalar

    @classmethod
    def from_signature_hex(
        cls, *, user: int | str, provider: int | str, nonce: int, fee: int, signature: str
    ) -> SignedRequest:
        """Build from the wire signature: 96 bytes hex, R8x || R8y || S as big-endian words."""
        raw = bytes.fromhex(signature.removeprefix("0x"))
        if len(raw) != 96:
            raise ValueError(f"signature must be 96 bytes, got {len(raw)}")
        r8x, r8y, s = (int.from_bytes(raw[i : i + 32], "big") for i in (0, 32, 64))
        return cls.model_validate(
            {
                "user": user,
                "provider": provider,
                "nonce": nonce,
                "fee": fee,
                "r8x": r8x,
                "r8y": r8y,
                "s": s,
            }
        )


class ChunkInput(BaseModel):
    """The SettleBatch(N) circuit input; field aliases are the circuit's signal names."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    user: Address
    provider: Address
    init_nonce: Nonce = Field(alias="initNonce")
    final_nonce: Nonce = Field(alias="finalNonce")
    total_fee: FieldElement = Field(alias="totalFee")
    signer_x: FieldElement = Field(alias="signerX")
    signer_y: FieldElement = Field(alias="signerY")
    enabled: list[Bit]
    nonce: list[FieldElement]
    fee: list[FieldElement]
    r8x: list[FieldElement] = Field(alias="R8x")
    r8y: list[FieldElement] = Field(alias="R8y")
    s: list[FieldElement] = Field(alias="S")

    @model_validator(mode="after")
    def _same_lengths(self) -> Self:
        n = len(self.enabled)
        if n == 0 or any(len(v) != n for v in (self.nonce, self.fee, self.r8x, self.r8y, self.s)):
            raise ValueError("per-entry arrays must be non-empty and of one length")
        return self

    @property
    def size(self) -> int:
        """The circuit size N this input is for."""
        return len(self.enabled)

    @property
    def count(self) -> int:
        """How many entries are real requests."""
        return sum(self.enabled)

    def public_inputs(self) -> list[int]:
        """The public signals in the circuit's (and ISettlementVerifier's) order."""
        return [
            self.user,
            self.provider,
            self.init_nonce,
            self.final_nonce,
            self.total_fee,
            self.signer_x,
            self.signer_y,
        ]

    def to_circuit_json(self) -> dict[str, str | list[str]]:
        """The input.json for circom's witness generator: decimal strings, as snarkjs expects
        (JSON numbers would lose precision above 2^53 in JavaScript)."""
        out: dict[str, str | list[str]] = {}
        for key, value in self.model_dump(by_alias=True).items():
            out[key] = [str(v) for v in value] if isinstance(value, list) else str(value)
        return out


class Groth16Proof(BaseModel):
    """A Groth16 proof in snarkjs's JSON shape (affine coordinates, decimal strings), with
    its public signals."""

    model_config = ConfigDict(frozen=True)

    pi_a: tuple[FieldElement, FieldElement]
    # G2 point as snarkjs writes it: ((x.c0, x.c1), (y.c0, y.c1)).
    pi_b: tuple[tuple[FieldElement, FieldElement], tuple[FieldElement, FieldElement]]
    pi_c: tuple[FieldElement, FieldElement]
    public_signals: list[FieldElement]

    @classmethod
    def from_snarkjs(cls, proof: dict[str, Any], public: Sequence[Any]) -> Groth16Proof:
        """Read snarkjs's proof.json and public.json (dropping the projective z coordinates)."""
        if proof.get("protocol", "groth16") != "groth16" or proof.get("curve", "bn128") != "bn128":
            raise ValueError("not a Groth16 proof on bn128")
        for point, z in ((proof["pi_a"], "1"), (proof["pi_c"], "1")):
            if str(point[2]) != z:
                raise ValueError("expected an affine G1 point (z = 1)")
        if [str(v) for v in proof["pi_b"][2]] != ["1", "0"]:
            raise ValueError("expected an affine G2 point (z = 1)")
        return cls.model_validate(
            {
                "pi_a": proof["pi_a"][:2],
                "pi_b": [proof["pi_b"][0], proof["pi_b"][1]],
                "pi_c": proof["pi_c"][:2],
                "public_signals": list(public),
            }
        )

    def to_snarkjs(self) -> tuple[dict[str, Any], list[str]]:
        """The proof.json and public.json that `snarkjs groth16 verify` reads."""
        (bx, by) = self.pi_b
        proof = {
            "pi_a": [str(self.pi_a[0]), str(self.pi_a[1]), "1"],
            "pi_b": [[str(bx[0]), str(bx[1])], [str(by[0]), str(by[1])], ["1", "0"]],
            "pi_c": [str(self.pi_c[0]), str(self.pi_c[1]), "1"],
            "protocol": "groth16",
            "curve": "bn128",
        }
        return proof, [str(v) for v in self.public_signals]

    def to_calldata(
        self,
    ) -> tuple[
        tuple[int, int],
        tuple[tuple[int, int], tuple[int, int]],
        tuple[int, int],
        tuple[int, ...],
    ]:
        """(a, b, c, publicInputs) for verifyProof. The EVM's pairing precompile takes an Fp2
        element as (c1, c0), so each G2 coordinate pair is reversed, as snarkjs's
        `zkey export soliditycalldata` does."""
        if len(self.public_signals) != N_PUBLIC:
            raise ValueError(f"expected {N_PUBLIC} public signals, got {len(self.public_signals)}")
        (bx, by) = self.pi_b
        return (
            self.pi_a,
            ((bx[1], bx[0]), (by[1], by[0])),
            self.pi_c,
            tuple(self.public_signals),
        )

    def to_bytes(self) -> bytes:
        """The 256-byte proof blob in calldata order: a, b (reversed pairs), c as 32-byte
        big-endian words; the shape arkworks-based provers return."""
        a, b, c, _ = self.to_calldata()
        words = [*a, *b[0], *b[1], *c]
        return b"".join(w.to_bytes(32, "big") for w in words)

    @classmethod
    def from_bytes(cls, blob: bytes, public_signals: Sequence[int]) -> Groth16Proof:
        """Inverse of to_bytes."""
        if len(blob) != 256:
            raise ValueError(f"a proof blob is 256 bytes, got {len(blob)}")
        w = [int.from_bytes(blob[i : i + 32], "big") for i in range(0, 256, 32)]
        return cls.model_validate(
            {
                "pi_a": (w[0], w[1]),
                "pi_b": ((w[3], w[2]), (w[5], w[4])),
                "pi_c": (w[6], w[7]),
                "public_signals": list(public_signals),
            }
        )


def build_chunk_input(
    requests: Iterable[SignedRequest], signer_pub: tuple[int, int] | Sequence[int], n: int
) -> ChunkInput:
    """Build the SettleBatch(n) input for one chunk: sort by nonce, check that the requests can
    be proven together, and pad with disabled entries.

    Raises ChunkError for an empty chunk, more than n requests, mixed users or providers, or
    a repeated nonce (the circuit needs strictly increasing nonces).
    """
    if n < 1:
        raise ChunkError(f"circuit size must be >= 1, got {n}")
    entries = sorted(requests, key=lambda r: r.nonce)
    if not entries:
        raise ChunkError("a chunk needs at least one request")
    if len(entries) > n:
        raise ChunkError(f"{len(entries)} requests do not fit a chunk of {n}")
    first = entries[0]
    for req in entries:
        if req.user != first.user or req.provider != first.provider:
            raise ChunkError("all requests of a chunk must have the same user and provider")
    for prev, cur in itertools.pairwise(entries):
        if cur.nonce == prev.nonce:
            raise ChunkError(f"nonce {cur.nonce} appears twice")
    signer = tuple(signer_pub)
    if len(signer) != 2:
        raise ChunkError("signer_pub must be a BabyJubJub point (x, y)")
    pad = n - len(entries)
    return ChunkInput(
        user=first.user,
        provider=first.provider,
        init_nonce=first.nonce,
        final_nonce=entries[-1].nonce,
        total_fee=sum(r.fee for r in entries),
        signer_x=signer[0],
        signer_y=signer[1],
        enabled=[1] * len(entries) + [0] * pad,
        nonce=[r.nonce for r in entries] + [0] * pad,
        fee=[r.fee for r in entries] + [0] * pad,
        r8x=[r.r8x for r in entries] + [PAD_R8X] * pad,
        r8y=[r.r8y for r in entries] + [PAD_R8Y] * pad,
        s=[r.s for r in entries] + [PAD_S] * pad,
    )


def split_into_chunks(requests: Iterable[SignedRequest], n: int) -> list[list[SignedRequest]]:
    """Sort requests by nonce and cut them into chunks of at most n, in settlement order
    (each chunk starts above the previous chunk's final nonce, as Serving.settleFees needs)."""
    if n < 1:
        raise ChunkError(f"circuit size must be >= 1, got {n}")
    entries = sorted(requests, key=lambda r: r.nonce)
    return [entries[i : i + n] for i in range(0, len(entries), n)]
