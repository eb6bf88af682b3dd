# SPDX-License-Identifier: Apache-2.0
"""Served-request events into the book, with the account loaded from the chain when Redis
lacks it (a new account, or a Redis that was flushed)."""

from __future__ import annotations

import logging

from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from zg_billing.book import Book, Recorded
from zg_billing.evidence import Evidence
from zg_billing.metrics import BillingMetrics
from zg_shared.accounts import AccountStore
from zg_shared.chain import ServingClient
from zg_shared.events import RequestServedV1

log = logging.getLogger(__name__)
_propagator = TraceContextTextMapPropagator()


class Intake:
    def __init__(
        self,
        book: Book,
        accounts: AccountStore,
        chain: ServingClient,
        metrics: BillingMetrics,
        evidence: Evidence,
    ) -> None:
        self.book = book
        self.accounts = accounts
        self.chain = chain
        self.metrics = metrics
        self.evidence = evidence

    async def record(self, event: RequestServedV1) -> Recorded | None:
        """Books the event (idempotent by nonce); None if it is another provider's, or not
        the gateway's (unsigned, or signed by another key than the service's receipt key)."""
        if event.provider.lower() != self.chain.sender.lower():
            return None
        if not await self.evidence.served(event):
            return None
        served_ms = int(event.occurred_at.timestamp() * 1000)
        # The consumer runs in the request's trace (from the message headers): keep it, so the
        # settlement can continue it.
        carrier: dict[str, str] = {}
        _propagator.inject(carrier)
        traceparent = carrier.get("traceparent", "")
        result = await self.book.record(event, served_ms, traceparent)
        if result.outcome is Recorded.NO_ACCOUNT:
            await self.accounts.load_from_chain(self.chain, event.user, self.chain.sender)
            result = await self.book.record(event, served_ms, traceparent)
        if result.outcome is Recorded.BEHIND_SEAL:
            # Only possible if Redis lost the seal's inputs; the request stays in the book and
            # is settled if no later batch passed its nonce first.
            log.error("request %s (nonce %d) arrived behind the seal", event.event_id, event.nonce)
        if result.restored:
            log.info("restored request %s into the gateway's view", event.event_id)
        self.metrics.recorded(result.outcome.value)
        return result.outcome
