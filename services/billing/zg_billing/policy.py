# SPDX-License-Identifier: Apache-2.0
"""When an account is due for settlement: a pure function of its summary and the settings."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class Reason(StrEnum):
    THRESHOLD = "threshold"  # enough fee to be worth the gas
    AGE = "age"  # the oldest request nears the refund lock time
    REFUND = "refund"  # the user asked for a refund: settle before it unlocks
    SWEEP = "sweep"  # the periodic sweep settles whatever is left
    RETRY = "retry"  # an attempt failed: settle what is still valid at once
    MANUAL = "manual"  # the operator asked (zg provider settle)


class Policy(BaseModel):
    model_config = ConfigDict(frozen=True)

    threshold_fee_wei: int
    max_age_s: float
    sweep_interval_s: float

    @classmethod
    def from_lock_time(
        cls,
        lock_time_s: int,
        *,
        threshold_fee_wei: int,
        max_age_lock_fraction: float,
        sweep_interval_s: float,
    ) -> Policy:
        return cls(
            threshold_fee_wei=threshold_fee_wei,
            max_age_s=lock_time_s * max_age_lock_fraction,
            sweep_interval_s=sweep_interval_s,
        )

    def due(
        self,
        *,
        unsettled_fee: int,
        oldest_ms: int,
        flagged: str,
        now_ms: int,
        sweeping: bool,
    ) -> Reason | None:
        """Why the account should be settled now, or None. `sweeping`: this pass is the
        periodic sweep (every `sweep_interval_s`), which settles whatever is unsettled;
        `flagged`: a reason recorded on the account (refund, retry), or ""."""
        if unsettled_fee <= 0:
            return None
        if flagged:
            return Reason(flagged)
        if unsettled_fee >= self.threshold_fee_wei:
            return Reason.THRESHOLD
        if now_ms - oldest_ms >= self.max_age_s * 1000:
            return Reason.AGE
        if sweeping:
            return Reason.SWEEP
        return None
