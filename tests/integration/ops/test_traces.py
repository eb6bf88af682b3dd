# SPDX-License-Identifier: Apache-2.0
"""Traces on the wire: the services, as processes, export with the real OTLP/HTTP exporter to
a receiver in the test (protobuf decoded with opentelemetry-proto). A user's paid requests
make one trace from the gateway's HTTP span through the served event, billing's settlement,
the prover and the settleFees transaction, carrying what an SRE searches by (user, provider,
request id, settlement id, transaction hash), and no key, password or signature anywhere."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.ops.conftest import Observed, known_secrets
from tests.integration.ops.otlp import ReceivedSpan
from tests.integration.polling import eventually

pytestmark = pytest.mark.slow
SECRET_NAMES = ("signature", "private", "password", "secret", "mnemonic")


def by_user(spans: list[ReceivedSpan], name: str, user: str) -> list[ReceivedSpan]:
    """Spans called `name` whose zg.users names `user`."""
    found = []
    for span in spans:
        users = span.attributes.get("zg.users")
        if span.name == name and isinstance(users, tuple) and user in users:
            found.append(span)
    return found


async def settled_spans(observed: Observed) -> list[ReceivedSpan]:
    """settleFees spans of the user, once there is one per settlement transaction."""
    user = observed.traffic.user
    hashes = {e.position.transaction_hash for e in observed.traffic.settlements if e.position}
    assert hashes

    async def all_exported() -> bool:
        seen = {
            s.attributes["zg.tx_hash"] for s in by_user(observed.receiver.spans, "settleFees", user)
        }
        return hashes <= seen

    await eventually(all_exported, within_s=30, what="a settleFees span per transaction")
    return by_user(observed.receiver.spans, "settleFees", user)


async def test_one_trace_runs_from_the_http_request_to_the_settlement_transaction(
    observed: Observed,
) -> None:
    traffic, receiver = observed.traffic, observed.receiver
    transactions = await settled_spans(observed)
    requests = [
        s
        for s in receiver.spans
        if s.kind == "SPAN_KIND_SERVER" and s.attributes.get("zg.user") == traffic.user
    ]
    # Every request the user sent (two chats, the fee-only request) is a gateway span that
    # names its receipt id, the provider and the service.
    assert {s.attributes["zg.request_id"] for s in requests} == {
        r.receipt_id for r in traffic.records
    }
    for span in requests:
        assert span.service == "zg-gateway"
        assert span.parent_span_id == ""  # the root: the SDK sends no trace context
        assert span.attributes["zg.provider"] == traffic.provider
        assert span.attributes["http.response.status_code"] == 200

    # Each settlement continues the trace of its oldest request and links the others'.
    settlements = by_user(receiver.spans, "settlement", traffic.user)
    covered = {s.trace_id for s in settlements} | {t for s in settlements for t in s.links}
    assert {s.trace_id for s in requests} <= covered

    for transaction in transactions:
        assert transaction.service == "zg-billing"
        assert transaction.attributes["zg.provider"] == traffic.provider
        settlement_id = transaction.attributes["zg.settlement_id"]
        spans = receiver.trace(transaction.trace_id)
        [root] = [s for s in spans if s.parent_span_id == ""]
        assert root in requests  # the trace starts at the user's HTTP request
        ids = {s.span_id for s in spans}
        orphans = [s.name for s in spans if s.parent_span_id and s.parent_span_id not in ids]
        assert not orphans, f"spans whose parent is not in the trace: {orphans}"
        assert {"zg-gateway", "zg-billing", "zg-prover"} <= {s.service for s in spans}
        names = {s.name for s in spans}
        for fragment in (
            "serving.request.served",  # gateway -> billing
            "serving.settlement.requested",  # billing -> prover
            "serving.proof.ready",  # prover -> billing
        ):
            assert any(fragment in n for n in names), (fragment, sorted(names))
        [settlement] = [s for s in spans if s.name == "settlement"]
        assert settlement.attributes["zg.settlement_id"] == settlement_id
        proving = [
            s
            for s in spans
            if s.service == "zg-prover" and s.attributes.get("zg.settlement_id") == settlement_id
        ]
        assert proving, "the prover's span names the settlement"
    assert {t.attributes["zg.tx_hash"] for t in transactions} == {
        e.position.transaction_hash for e in traffic.settlements if e.position
    }


async def test_no_span_carries_a_key_a_password_or_a_signature(observed: Observed) -> None:
    await settled_spans(observed)
    await asyncio.sleep(0.5)  # the last batches of spans
    secrets = known_secrets(observed)
    assert observed.receiver.spans
    for span in observed.receiver.spans:
        for key, value in {**span.attributes, **span.resource}.items():
            assert not any(word in key.lower() for word in SECRET_NAMES), (span.name, key)
            text = str(value).lower()
            leaked = [s[:8] for s in secrets if s in text]
            assert not leaked, f"{span.service} {span.name} {key} holds a secret ({leaked})"
    assert observed.receiver.refused == 0
