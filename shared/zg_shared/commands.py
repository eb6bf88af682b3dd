# SPDX-License-Identifier: Apache-2.0
"""Commands sent over core NATS request/reply (not JetStream: a command that finds no one
listening should fail at once, not wait in a stream)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from zg_shared.chain.types import Address


class SettleNow(BaseModel):
    """An operator asks billing to settle now, whatever the policy says."""

    # Exactly these fields: only operators may publish the subject, but anyone on the bus can
    # name it as the reply of a `MSG.NEXT` (NATS checks no reply subject), and a settlement
    # request delivered there carried a `provider`, so it read as a command for every account.
    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: Address
    user: Address | None = Field(None, description="Only this user's account; None: every one")

    @staticmethod
    def subject(provider: str) -> str:
        """Each provider's billing listens on its own subject."""
        return f"zg.billing.{provider.lower()}.settle-now"


class SettleNowReply(BaseModel):
    model_config = ConfigDict(frozen=True)

    provider: Address
    users: tuple[Address, ...] = Field(description="Accounts flagged: settled at the next pass")
    retry_after_s: float = Field(
        0.0,
        ge=0,
        description="Above 0: refused, asked again too soon (billing spends gas on each "
        "settlement, so it honours one command per BILLING_SETTLE_NOW_INTERVAL_S)",
    )
