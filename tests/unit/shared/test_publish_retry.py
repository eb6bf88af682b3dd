# SPDX-License-Identifier: Apache-2.0
"""publish_event rides out a cluster's recovery: what a publish meets while a stream elects a
new leader is retried with the same Nats-Msg-Id, anything else (and a recovery that takes too
long) is raised."""

from __future__ import annotations

from typing import Any, cast

import pytest
from faststream.nats import NatsBroker
from nats.errors import NoRespondersError
from nats.js.errors import BadRequestError, NoStreamResponseError

from zg_shared.bus import publish_event
from zg_shared.events import ReorgDetectedV1


class FlakyBroker:
    """Fails its first publishes with the errors given, then acks."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.headers: list[dict[str, str]] = []

    async def publish(self, _: object, subject: str, **options: Any) -> str:
        self.headers.append(options["headers"])
        if self.failures:
            raise self.failures.pop(0)
        return f"acked on {subject}"


def event() -> ReorgDetectedV1:
    return ReorgDetectedV1(event_id="reorg-7", common_ancestor=1, dropped_from=2, depth=1)


async def test_a_stream_without_a_leader_for_a_moment_is_published_to_again() -> None:
    broker = FlakyBroker(NoStreamResponseError(), NoRespondersError(), TimeoutError())
    ack: object = await publish_event(cast(NatsBroker, broker), event())
    assert ack == "acked on chain.reorg.detected.v1"
    assert broker.headers == [{"Nats-Msg-Id": "reorg-7"}] * 4  # one id: stored once


async def test_a_refusal_is_not_retried_and_a_long_outage_is_raised() -> None:
    refused = FlakyBroker(BadRequestError())
    with pytest.raises(BadRequestError):
        await publish_event(cast(NatsBroker, refused), event())
    assert len(refused.headers) == 1

    away = FlakyBroker(*[NoStreamResponseError()] * 100)
    with pytest.raises(NoStreamResponseError):
        await publish_event(cast(NatsBroker, away), event(), retry_for_s=0.5)
    assert 2 <= len(away.headers) < 10
