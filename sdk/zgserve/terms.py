# SPDX-License-Identifier: Apache-2.0
"""A service's terms: what a request signed under them may be charged.

The SDK reads them from the chain's `Service` (here, and nowhere else), attaches the terms in
force to every request it signs, and judges that request's receipt under those terms only:
a provider that changes its price on chain after a request was signed cannot charge the new
price for it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from zg_shared.chain import Service


class ServiceTerms(BaseModel):
    """A service as registered on chain when a request was signed."""

    model_config = ConfigDict(frozen=True)

    name: str
    input_price: int = Field(description="wei per input unit")
    output_price: int = Field(description="wei per output unit")
    signer_address: str = Field(description="the address whose key signs the receipts")
    updated_at: int = Field(0, description="the chain's time of the registration read (0: unknown)")

    @classmethod
    def of(cls, service: Service) -> ServiceTerms:
        return cls(
            name=service.name,
            input_price=service.input_price,
            output_price=service.output_price,
            signer_address=service.signer_address,
            updated_at=service.updated_at,
        )
