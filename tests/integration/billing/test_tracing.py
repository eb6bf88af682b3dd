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


# What the trace must hold besides the request: the served event (published by the gateway,
# consumed by billing), billing's settlement span, billing -> prover, prover -> billing.
FRAGMENTS = (
    "serving.request.served",
    "settlement",
    "serving.settlement.requested",
    "serving.proof.ready",
)


def missing(trace: list[ReadableSpan], tx_hash: str) -> list[str]:
    """What a trace lacks: the spans named, and the settleFees span of `tx_hash`."""
    names = {s.name for s in trace}
    lacking = [f for f in FRAGMENTS if not any(f in name for name in names)]
    sent = [str((s.attributes or {}).get("zg.tx_hash", "")).lower() for s in trace]
    if not any(s.name == "settleFees" for s in trace) or tx_hash not in sent:
        lacking.append(f"settleFees of {tx_hash}")
    return lacking


def lacking(spans: InMemorySpanExporter, tx_hash: str) -> list[str]:
    """What the trace of the user's HTTP request lacks so far (of the ended spans). Each
    request span heading a trace is tried: a test before may leave one that ends late."""
    finished = list(spans.get_finished_spans())
    traces = [
        [s for s in finished if s.context is not None and s.context.trace_id == trace_id]
        for trace_id in {
            s.context.trace_id
            for s in finished
            if s.kind is SpanKind.SERVER and "/v1/proxy/" in s.name and s.context is not None
        }
    ]
    return min((missing(t, tx_hash) for t in traces), key=len, default=["the request's span"])


async def test_one_trace_runs_from_the_request_to_the_settlement_transaction(
    stack: Stack, spans: InMemorySpanExporter
) -> None:
    user = stack.users[0]
    fee = await stack.send(user, "trace me through to the chain")
    async with running_billing(stack):

        async def settled() -> bool:
            return sum(e.amount for e in await stack.settled_on_chain()) == fee

        await eventually(settled, what="the request settled")
        [event] = await stack.settled_on_chain()
        assert event.position is not None
        tx_hash = event.position.transaction_hash.lower()
        # Spans end in their own time (a consumer's after its handler, each service's on its
        # own task): wait for the outcome rather than for one span.
        await eventually(
            lambda: asyncio.sleep(0, not lacking(spans, tx_hash)),
            what="the request's trace through to the settlement transaction",
        )
