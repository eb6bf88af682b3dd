# SPDX-License-Identifier: Apache-2.0
"""A service's terms: what a request signed under them may be charged.

The SDK reads them from the chain's `Service` (here, and nowhere else), attaches the terms in
force to every request it signs, and judges that request's receipt under those terms only:
a provider that changes its price on chain after a request was signed cannot charge the new
price for it. `Limits` are the user's ceilings on what any request may cost.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from zg_shared.chain import Service
from zg_shared.metering import DEFAULT_RULE
from zgserve.errors import CeilingExceeded


class ServiceTerms(BaseModel):
    """A service as registered on chain when a request was signed."""

    model_config = ConfigDict(frozen=True)

    name: str
    input_price: int = Field(description="wei per input unit")
    output_price: int = Field(description="wei per output unit")
    signer_address: str = Field(description="the address whose key signs the receipts")
    updated_at: int = Field(0, description="the chain's time of the registration read (0: unknown)")
    counting_rule: str = Field(
        DEFAULT_RULE, description="how units are counted (zg_shared.metering)"
    )

    @classmethod
    def of(cls, service: Service) -> ServiceTerms:
        return cls(
            name=service.name,
            input_price=service.input_price,
            output_price=service.output_price,
            signer_address=service.signer_address,
            updated_at=service.updated_at,
            counting_rule=service.counting_rule,
        )


# Defaults: a price rise of many orders of magnitude (a dishonest or mistaken provider) is
# refused, while any price a real service asks today passes. Each is one setting away.
DEFAULT_MAX_PRICE = 10**12  # wei per unit (1,000 gwei): a million units for at most 1 0G
DEFAULT_MAX_REQUEST_FEE = 10**16  # 0.01 0G for one request, worst case
DEFAULT_MAX_DEBT = 10**17  # 0.1 0G owed to one provider at once, worst case
DEFAULT_MAX_TOKENS = 1024  # sent as `max_tokens` when a request sets no output bound


class Limits(BaseModel):
    """What the user agrees to pay at most. The SDK refuses (`CeilingExceeded`) to sign a
    request beyond any of them, before anything is sent. Environment: `ZG_MAX_INPUT_PRICE`,
    `ZG_MAX_OUTPUT_PRICE`, `ZG_MAX_REQUEST_FEE`, `ZG_MAX_DEBT`, `ZG_MAX_TOKENS`."""

    model_config = ConfigDict(frozen=True)

    max_input_price: int = Field(DEFAULT_MAX_PRICE, ge=0, description="wei per input unit")
    max_output_price: int = Field(DEFAULT_MAX_PRICE, ge=0, description="wei per output unit")
    max_request_fee: int = Field(
        DEFAULT_MAX_REQUEST_FEE,
        ge=0,
        description="wei one request may cost at worst: its input fee plus its output bound "
        "(max_tokens) times the output price",
    )
    max_debt: int = Field(
        DEFAULT_MAX_DEBT,
        ge=0,
        description="wei the SDK may owe one provider at once, at worst: output fees received "
        "and not yet paid plus the worst case of every request in flight",
    )
    max_tokens: int = Field(
        DEFAULT_MAX_TOKENS,
        ge=1,
        description="the output bound sent as `max_tokens` when a request sets none",
    )

    def check_terms(self, provider: str, terms: ServiceTerms) -> None:
        """Refuses a service whose prices are above the ceilings."""
        for ceiling, price, kind in (
            ("max_input_price", terms.input_price, "input"),
            ("max_output_price", terms.output_price, "output"),
        ):
            limit = getattr(self, ceiling)
            if price > limit:
                what = f"the {kind} price per unit of service {terms.name!r} of {provider}"
                raise CeilingExceeded(ceiling, price, limit, what)
