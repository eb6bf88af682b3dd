# SPDX-License-Identifier: Apache-2.0
"""Events the gateway publishes about the requests it served."""

from __future__ import annotations

import json
from datetime import UTC
from typing import ClassVar, Literal

from eth_utils.crypto import keccak
from pydantic import Field

from zg_shared.chain.types import Address, Uint256
from zg_shared.events.base import Event


class RequestServedV1(Event):
    """One request the gateway admitted, with its outcome. `event_id` is the request id.

    `charged` requests are owed: billing settles them with the user's signature. `voided`
    ones (the backend never answered) are owed nothing; their nonce stays used.

    `attestation` is the gateway's EIP-191 signature over `digest()` with its receipt key
    (the service's registered `signerAddress`): billing books only what the gateway signed,
    not what anyone who reaches the bus publishes.
    """

    SUBJECT: ClassVar[str] = "serving.request.served.v1"

    service: str
    user: Address
    provider: Address
    nonce: int = Field(ge=0, lt=2**64)
    fee: int = Field(
        ge=0, description="Input-Fee + Previous-Output-Fee: what the signature authorises"
    )
    input_fee: int = Field(ge=0)
    previous_output_fee: int = Field(ge=0)
    signature: str = Field(description="EdDSA-Poseidon signature, 96 bytes hex (R8x, R8y, S)")
    input_units: int = Field(ge=0)
    output_units: int = Field(ge=0)
    output_fee: int = Field(ge=0, description="Owed by the user's next request")
    outcome: Literal["charged", "voided"]
    reason: str = Field("", description="Why a request was voided, or how it ended")
    streamed: bool = False
    signer: tuple[Uint256, Uint256] | None = Field(
        None,
        description="The key the signature verified against: after a rotation (rotateSigner) "
        "billing proves each request against the key that signed it; None: the account's key",
    )
    attestation: str = Field(
        "", description="The gateway's signature over digest(), by the service's receipt signer"
    )

    def digest(self) -> bytes:
        """keccak of every field but the attestation, in a fixed order (docs/protocol.md)."""
        fields = [
            DIGEST_TAG,
            self.event_id,
            self.occurred_at.astimezone(UTC).isoformat(),
            self.service,
            self.user.lower(),
            self.provider.lower(),
            str(self.nonce),
            str(self.fee),
            str(self.input_fee),
            str(self.previous_output_fee),
            self.signature.lower(),
            str(self.input_units),
            str(self.output_units),
            str(self.output_fee),
            self.outcome,
            self.reason,
            str(self.streamed).lower(),
            *([] if self.signer is None else [f"{self.signer[0]}:{self.signer[1]}"]),
        ]
        return keccak(json.dumps(fields, separators=(",", ":")).encode())


DIGEST_TAG = "zg.serving.request.served.v1"
