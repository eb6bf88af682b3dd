# SPDX-License-Identifier: Apache-2.0
"""The blocking facade with the synchronous openai client, plain and streamed. The test runs
it in a worker thread: the gateway it talks to is served by this test session's event loop."""

from __future__ import annotations

import asyncio

import openai

from tests.integration.sdk.conftest import DEPOSIT, SERVICE, Network
from zgserve import SyncZgClient, verify_evidence


def _use_it(network: Network) -> tuple[str, str, int, list[bool]]:
    key = network.user_key.key.hex()
    with SyncZgClient(network.rpc_url, network.contract, key, state_dir=network.state_dir) as zg:
        zg.create_account(network.provider, deposit=DEPOSIT)
        session = zg.session(network.provider, SERVICE)
        ai = openai.OpenAI(base_url=session.base_url, api_key="zg", http_client=session.http)
        reply = ai.chat.completions.create(
            model="zg-demo-1", messages=[{"role": "user", "content": "hello there"}]
        )
        stream = ai.chat.completions.create(
            model="zg-demo-1", messages=[{"role": "user", "content": "and again"}], stream=True
        )
        streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        evidence = zg.aio._providers[network.provider].evidence()
        return (
            reply.choices[0].message.content or "",
            streamed,
            zg.unpaid(network.provider),
            [f.ok for f in verify_evidence(evidence)],
        )


async def test_sync_client_with_the_sync_openai_client(network: Network) -> None:
    plain, streamed, unpaid, verdicts = await asyncio.to_thread(_use_it, network)
    assert plain
    assert streamed
    assert unpaid > 0
    assert verdicts == [True, True]
    state = await network.state(network.user_key.address)
    assert state is not None
    assert state.output_debt == 0  # paid when the client closed
