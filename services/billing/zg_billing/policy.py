# SPDX-License-Identifier: Apache-2.0
"""When an account is due for settlement: a pure function of its summary and the settings.

Gas is paid per chunk (~234k) plus ~77k per `settleFees` call, whatever the chunk holds, so a
settlement is cheapest per request when its chunks are full and it carries several of them.
Besides the rules that bound the provider's risk (fee threshold, age, refund, retry, sweep),
an account is therefore due once it holds a whole chunk of the largest size (`FULL`: only its
whole chunks are taken, the rest keeps filling), and an account that is not due yet joins a
settlement that goes out anyway once it is half way to being due (`JOIN`: half a chunk, or
half the age threshold), so that it shares that call instead of paying for one of its own a
little later. docs/billing.md states the rule.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Reason(StrEnum):
    THRESHOLD = "threshold"  # enough fee to be worth the gas
    AGE = "age"  # the oldest request nears the refund lock time
    REFUND = "refund"  # the user asked for a refund: settle before it unlocks
    ROTATION = "rotation"  # the user rotated their key: settle the old key's before it expires
    SWEEP = "sweep"  # the periodic sweep settles whatever is left
    RETRY = "retry"  # an attempt failed: settle what is still valid at once
    MANUAL = "manual"  # the operator asked (zg provider settle)
    FULL = "full"  # a whole chunk of the largest size is waiting: settle the whole chunks
    JOIN = "join"  # half way to due: rides along with a settlement that goes out anyway


class Policy(BaseModel):
    model_config = ConfigDict(frozen=True)

    threshold_fee_wei: int
    max_age_s: float
    sweep_interval_s: float
    full_chunk: int = Field(0, ge=0, description="The largest chunk size; 0: no FULL rule")
    join_fraction: float = Field(
        0.5, ge=0, le=1, description="Part of the way to due at which an account joins"
    )

    @classmethod
    def from_lock_time(
        cls,
        lock_time_s: int,
        *,
        threshold_fee_wei: int,
        max_age_lock_fraction: float,
        sweep_interval_s: float,
        full_chunk: int = 0,
        join_fraction: float = 0.5,
    ) -> Policy:
        return cls(
            threshold_fee_wei=threshold_fee_wei,
            max_age_s=lock_time_s * max_age_lock_fraction,
            sweep_interval_s=sweep_interval_s,
            full_chunk=full_chunk,
            join_fraction=join_fraction,
        )

    def due(
        self,
        *,
        unsettled_fee: int,
        oldest_ms: int,
        flagged: str,
        now_ms: int,
        sweeping: bool,
        unsettled_count: int = 0,
    ) -> Reason | None:
        """Why the account should be settled now, or None. `sweeping`: this pass is the
        periodic sweep (every `sweep_interval_s`), which settles whatever is unsettled;
        `flagged`: a reason recorded on the account (refund, retry), or "". Every reason but
        FULL settles all the account's requests; FULL only its whole chunks."""
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
        if self.full_chunk and unsettled_count >= self.full_chunk:
            return Reason.FULL
        return None

    def joins(
        self, *, unsettled_fee: int, unsettled_count: int, oldest_ms: int, now_ms: int
    ) -> bool:
        """Whether an account that is not due takes a place in a settlement going out now:
        its chunk would be at least half full, or its oldest request half way to the age
        threshold (it would need a call of its own soon)."""
        if unsettled_fee <= 0 or self.join_fraction <= 0:
            return False
        if self.full_chunk and unsettled_count >= self.join_fraction * self.full_chunk:
            return True
        if unsettled_fee >= self.join_fraction * self.threshold_fee_wei:
            return True
        return now_ms - oldest_ms >= self.join_fraction * self.max_age_s * 1000
