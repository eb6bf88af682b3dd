# SPDX-License-Identifier: Apache-2.0
"""The Serving contract's structs as pydantic models: snake_case fields, ABI names as aliases."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from zg_shared.chain.types import Address, Uint256, Wei
from zg_shared.metering import DEFAULT_RULE


class ChainModel(BaseModel):
    """Immutable, built from ABI-named values (camelCase) or Python names alike."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)

    def to_abi(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)


class Refund(ChainModel):
    amount: Wei
    created_at: int
    processed: bool


class Account(ChainModel):
    user: Address
    provider: Address
    nonce: Uint256 = Field(description="Last settled request nonce")
    balance: Wei
    pending_refund: Wei
    signer: tuple[Uint256, Uint256] = Field(description="BabyJubJub public key (x, y)")
    previous_signer: tuple[Uint256, Uint256] = Field(
        (0, 0), description="The key rotateSigner replaced, settling until its expiry"
    )
    previous_signer_expires_at: int = Field(0, description="Unix time; 0: no previous signer")
    refunds: tuple[Refund, ...]
    additional_info: str

    def accepts_signer(self, signer: tuple[int, int], now: int) -> bool:
        """Whether settleFees at time `now` takes a chunk proved against `signer`."""
        if tuple(signer) == tuple(self.signer):
            return True
        return now < self.previous_signer_expires_at and tuple(signer) == tuple(
            self.previous_signer
        )

    @property
    def available(self) -> int:
        """What the user may still spend or ask back: balance not promised to refunds."""
        return self.balance - self.pending_refund


class ServiceParams(ChainModel):
    """What a provider registers; the contract adds `provider` and `updatedAt`."""

    name: str = Field(min_length=1)
    service_type: str = "chatbot"
    url: str = Field(min_length=1)
    model: str = ""
    verifiability: str = ""
    input_price: Wei = Field(description="Wei per input unit")
    output_price: Wei = Field(description="Wei per output unit")
    signer_address: Address = Field(description="Signs the provider's response receipts")
    counting_rule: str = Field(
        DEFAULT_RULE,
        min_length=1,
        description="How units are counted (zg_shared.metering); read as the chain has it",
    )


class Service(ServiceParams):
    provider: Address
    updated_at: int


class SettlementProof(ChainModel):
    """One Groth16 proof for one chunk of one user's requests, in Solidity calldata form."""

    circuit_size: int = Field(
        ge=1, description="N of the SettleBatch(N) circuit it was proved with: picks the verifier"
    )
    a: tuple[Uint256, Uint256]
    b: tuple[tuple[Uint256, Uint256], tuple[Uint256, Uint256]]
    c: tuple[Uint256, Uint256]
    public_inputs: tuple[Uint256, Uint256, Uint256, Uint256, Uint256, Uint256, Uint256] = Field(
        description="[user, provider, initNonce, finalNonce, totalFee, signerX, signerY]"
    )
