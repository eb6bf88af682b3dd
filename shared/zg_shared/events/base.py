# SPDX-License-Identifier: Apache-2.0
"""The envelope every bus event shares.

Events are frozen pydantic models. `event_id` becomes the `Nats-Msg-Id` header, so a
publisher that retries after a timeout cannot create a duplicate within JetStream's window,
and consumers de-duplicate by it beyond that. Compatible changes add optional fields; anything
else is a new class on a `.v2` subject.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field


def new_event_id() -> str:
    return uuid.uuid4().hex


def utc_now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    SUBJECT: ClassVar[str]

    event_id: str = Field(default_factory=new_event_id, description="De-duplication id")
    occurred_at: datetime = Field(default_factory=utc_now)
