# SPDX-License-Identifier: Apache-2.0
"""Events between billing and the prover: what to prove, and the proofs."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from zg_shared.chain.models import SettlementProof
from zg_shared.chain.types import Address
from zg_shared.events.base import Event
from zg_shared.zk.models import SignedRequest


class UserBatch(BaseModel):
    """One user's signed requests to settle, in any order; the prover sorts and chunks them."""

    model_config = ConfigDict(frozen=True)

    user: Address
    signer: tuple[int, int] = Field(description="The account's BabyJubJub key (x, y)")
    requests: tuple[SignedRequest, ...] = Field(min_length=1)


class ChunkProof(BaseModel):
    """A proof for up to N consecutive requests of one user, ready for `settleFees`."""

    model_config = ConfigDict(frozen=True)

    user: Address
    init_nonce: int
    final_nonce: int
    total_fee: int
    request_count: int
    calldata: SettlementProof


class SettlementRequestedV1(Event):
    """What to prove. Billing sends one message per chunk (`part` of `parts`), so that the
    provers sharing the work queue prove one settlement's chunks in parallel; a message with
    several batches (or more requests than `circuit_size`) is cut into chunks by the prover."""

    SUBJECT: ClassVar[str] = "serving.settlement.requested.v1"

    settlement_id: str = Field(description="Billing's id; proofs and failures refer to it")
    provider: Address
    batches: tuple[UserBatch, ...] = Field(min_length=1)
    circuit_size: int | None = Field(
        None, ge=1, description="Prove with SettleBatch(N) for this N; None: the prover's largest"
    )
    part: int = Field(0, ge=0, description="Which part of the settlement this message is")
    parts: int = Field(1, ge=1, description="How many parts the settlement was cut into")


class ProofReadyV1(Event):
    SUBJECT: ClassVar[str] = "serving.proof.ready.v1"

    settlement_id: str
    provider: Address
    proofs: tuple[ChunkProof, ...] = Field(description="In settlement order: users, then nonces")
    backend: str = Field(description="Which prover made them, e.g. snarkjs-cpu")
    circuit_size: int
    prove_seconds: float
    part: int = Field(0, ge=0, description="The request's part (see SettlementRequestedV1)")
    parts: int = Field(1, ge=1)
    cpu_seconds: float | None = Field(None, description="Prover CPU time spent, all threads")
    dev_keys: bool = Field(False, description="Proven with single-party DEV keys")
    prover: str = Field("", description="Which prover instance of the pool proved them")


class ProofFailedV1(Event):
    SUBJECT: ClassVar[str] = "serving.proof.failed.v1"

    settlement_id: str
    provider: Address
    reason: str
    retryable: bool = Field(description="False when the input itself can never be proven")
    user: Address | None = Field(None, description="The user whose requests failed, if one did")
    part: int = Field(0, ge=0)


class SettledChunk(BaseModel):
    model_config = ConfigDict(frozen=True)

    user: Address
    init_nonce: int
    final_nonce: int
    total_fee: int
    request_count: int


class SettlementConfirmedV1(Event):
    """Every chunk of a settlement is confirmed on chain: the provider holds the fees."""

    SUBJECT: ClassVar[str] = "serving.settlement.confirmed.v1"

    settlement_id: str
    provider: Address
    tx_hash: str
    chunks: tuple[SettledChunk, ...]
    total_fee: int
    gas_used: int
    lag_seconds: float = Field(description="From the oldest request served to confirmation")


class UnsettledRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    user: Address
    nonce: int
    fee: int
    request_id: str


class SettlementFailedV1(Event):
    """A settlement attempt failed. Requests in `written_off` can never be collected (the
    chain passed their nonce without them, or no proof can be made); the others are
    settled again by a later attempt."""

    SUBJECT: ClassVar[str] = "serving.settlement.failed.v1"

    settlement_id: str
    provider: Address
    reason: str
    attempt: int
    written_off: tuple[UnsettledRequest, ...] = ()
