# SPDX-License-Identifier: Apache-2.0
"""One trace from a user's HTTP request to the settlement transaction: the gateway's span, the
served-request event, billing's settlement, the prover's proof and the settleFees call all
share one trace id (W3C trace context carried in the NATS headers)."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.integration.billing.conftest import Stack, running_billing
from tests.integration.polling import eventually

pytestmark = pytest.mark.slow


def named(spans: list[ReadableSpan], fragment: str) -> list[ReadableSpan]:
    return [s for s in spans if fragment in s.name]


async def test_one_trace_runs_from_the_request_to_the_settlement_transaction(
    stack: Stack, spans: InMemorySpanExporter
) -> None:
    user = stack.users[0]
    fee = await stack.send(user, "trace me through to the chain")
    async with running_billing(stack):

        async def settled() -> bool:
            return sum(e.amount for e in await stack.settled_on_chain()) == fee

        await eventually(settled, what="the request settled")
        await eventually(
            lambda: asyncio.sleep(0, bool(named(list(spans.get_finished_spans()), "settleFees"))),
            what="the settleFees span ended",
        )

    finished = list(spans.get_finished_spans())
    [request] = [s for s in finished if s.kind is SpanKind.SERVER and "/v1/proxy/" in s.name]
    assert request.context is not None
    trace_id = request.context.trace_id
    in_trace = [s for s in finished if s.context is not None and s.context.trace_id == trace_id]
    names = sorted({s.name for s in in_trace})

    def has(fragment: str) -> bool:
        return any(fragment in name for name in names)

    assert has("serving.request.served"), names  # published by the gateway, consumed by billing
    assert has("settlement"), names  # billing's settlement span
    assert has("serving.settlement.requested"), names  # billing -> prover
    assert has("serving.proof.ready"), names  # prover -> billing
    [transaction] = [s for s in in_trace if s.name == "settleFees"]
    assert transaction.attributes is not None
    assert str(transaction.attributes["zg.tx_hash"]).startswith("0x")
