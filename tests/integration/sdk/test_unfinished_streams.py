# SPDX-License-Identifier: Apache-2.0
"""A stream the backend does not finish: the gateway voids it and sends an error event, the
openai client raises on it, and the SDK takes its payment back (the output fee that request
carried is owed again), so the SDK and the gateway still agree on what is owed."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.integration.sdk.conftest import DEPOSIT, SERVICE, Network

PROMPT: list[Any] = [{"role": "user", "content": "hello there gateway"}]


@pytest.mark.parametrize(
    "backend_knobs",
    [{"early_done_after_chunks": 2}, {"error_after_chunks": 2, "stream_error": "end"}],
    ids=["early-done", "body-ends"],
)
async def test_a_voided_stream_raises_and_its_debt_is_owed_again(network: Network) -> None:
    async with network.client() as zg:
        await zg.create_account(network.provider, deposit=DEPOSIT)
        session = await zg.session(network.provider, SERVICE, network.gateway_url)
        ai = openai.AsyncOpenAI(base_url=session.base_url, api_key="zg", http_client=session.http)

        await ai.chat.completions.create(model="zg-demo-1", messages=PROMPT)
        owed = zg.unpaid(network.provider)
        assert owed > 0
        stream = await ai.chat.completions.create(model="zg-demo-1", messages=PROMPT, stream=True)
        with pytest.raises(openai.APIError, match="nothing is charged"):
            async for _ in stream:
                pass
        # The voided request carried the debt: the SDK owes it again, as the gateway says.
        assert zg.unpaid(network.provider) == owed
        state = await network.state(zg.address)
        assert state is not None
        assert (state.output_debt, state.reserved) == (owed, 0)
    # close() paid it.
    state = await network.state(zg.address)
    assert state is not None
    assert state.output_debt == 0
