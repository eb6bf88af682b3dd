# SPDX-License-Identifier: Apache-2.0
"""A billing handler that meets Redis (or the chain) away has its message redelivered later,
never rejected: JetStream would not deliver a rejected message again, and that message may be
a proof, a served request or a FeesSettled."""

from __future__ import annotations

from typing import Any, cast

import pytest
from faststream.nats import NatsMessage
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.sentinel import MasterNotFoundError

from zg_billing.handlers import CHAIN_RETRY_S, redelivered_on_outage


class Message:
    def __init__(self) -> None:
        self.nacked: list[float] = []

    async def nack(self, delay: float) -> None:
        self.nacked.append(delay)


@pytest.mark.parametrize(
    "outage",
    [RedisConnectionError("gone"), MasterNotFoundError("zgserve"), ReadOnlyError("replica")],
)
async def test_an_outage_redelivers_the_message(outage: Exception) -> None:
    message = Message()
    async with redelivered_on_outage(cast(NatsMessage, message), "a proof"):
        raise outage
    assert message.nacked == [CHAIN_RETRY_S]


async def test_a_bug_is_not_retried_forever() -> None:
    message: Any = Message()
    with pytest.raises(ValueError, match="bad"):
        async with redelivered_on_outage(message, "a proof"):
            raise ValueError("bad")
    assert message.nacked == []
