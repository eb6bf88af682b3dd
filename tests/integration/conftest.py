"""Fixtures for tests that need a chain of their own: a private anvil they may rewind, stop
or reorganise without disturbing the session's shared one."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from zg_shared.chain import AnvilNode, Web3Client


@pytest.fixture
async def node() -> AsyncIterator[AnvilNode]:
    """A private anvil with 10 funded accounts, for this test only."""
    async with AnvilNode(accounts=10) as anvil:
        yield anvil


@pytest.fixture
async def private_w3(node: AnvilNode) -> AsyncIterator[Web3Client]:
    w3 = node.web3()
    yield w3
    await w3.provider.disconnect()
