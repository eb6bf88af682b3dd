# SPDX-License-Identifier: Apache-2.0
"""Fixtures for integration tests: a private anvil a test may rewind, stop or reorganise
without disturbing the session's shared one, a client of the session's Redis flushed for the
test, and the spans the services in this process end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from eth_account import Account as EthAccount
from eth_account.signers.local import LocalAccount
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from redis.asyncio import Redis

from zg_shared.chain import AnvilNode, Web3Client
from zg_shared.telemetry import setup_telemetry


@pytest.fixture
async def node() -> AsyncIterator[AnvilNode]:
    """A private anvil with 10 funded accounts, for this test only."""
    async with AnvilNode(accounts=10) as anvil:
        yield anvil


def node_key(node: AnvilNode, index: int) -> LocalAccount:
    """The key of the anvil's funded account `index`."""
    account: LocalAccount = EthAccount.from_key(node.accounts[index].private_key)
    return account


def node_keys(node: AnvilNode) -> list[LocalAccount]:
    return [node_key(node, index) for index in range(len(node.accounts))]


@pytest.fixture
async def private_w3(node: AnvilNode) -> AsyncIterator[Web3Client]:
    w3 = node.web3()
    yield w3
    await w3.provider.disconnect()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client of the session's Redis, emptied for this test."""
    client = Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def span_exporter() -> InMemorySpanExporter:
    """Added once: a tracer provider cannot drop a processor again."""
    exporter = InMemorySpanExporter()
    setup_telemetry("zg-tests").tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def spans(span_exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    """The spans ended during this test by every service running in this process (they share
    the process's one tracer provider)."""
    span_exporter.clear()
    yield span_exporter
    span_exporter.clear()
