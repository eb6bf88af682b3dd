# SPDX-License-Identifier: Apache-2.0
"""A stream the user closes before `[DONE]`: the gateway charges what it relayed; the SDK
fetches that receipt (`GET .../signature/{id}`), verifies it, owes its output fee and pays it
with the next request, so no debt is left unknown to it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.integration.sdk.conftest import DEPOSIT, SERVICE, Network, run_zg, zg_env
from zgserve import verify_evidence


@pytest.fixture
def backend_knobs() -> dict[str, Any]:
    # A reply of about a minute (the SDK bounds it to 1,024 tokens: 50 ms each): every test
    # here leaves it long before its end, even on a loaded machine.
    return {"reply_words": 2_000, "token_latency_ms": 50.0}


MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [
    {"role": "user", "content": "tell me a long story"}
]


async def test_an_abandoned_stream_is_paid_for_what_was_delivered(network: Network) -> None:
    async with network.client() as zg:
        await zg.create_account(network.provider, deposit=DEPOSIT)
        session = await zg.session(network.provider, SERVICE)
        ai = openai.AsyncOpenAI(base_url=session.base_url, api_key="zg", http_client=session.http)
        stream = await ai.chat.completions.create(model="zg-demo-1", messages=MESSAGES, stream=True)
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        await stream.close()

        state = await network.state(zg.address)
        assert state is not None
        owed = zg.unpaid(network.provider)
        assert owed == state.output_debt > 0
        evidence = (await zg.provider_state(network.provider)).evidence()
        [record] = evidence.records
        assert record.streamed
        assert [f.ok for f in verify_evidence(evidence)] == [True]
        user = zg.address
    state = await network.state(user)
    assert state is not None
    assert state.output_debt == 0  # paid at close


def _abandon_with_the_sync_client(network: Network) -> tuple[int, bool]:
    with network.sync_stream(MESSAGES) as (zg, stream):
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        stream.close()
        [record] = zg.aio._providers[network.provider].records
        return zg.unpaid(network.provider), record.streamed


async def test_the_sync_client_abandoning_a_stream_owes_the_same(network: Network) -> None:
    """In a worker thread: the gateway is served by this test session's event loop."""
    unpaid, streamed = await asyncio.to_thread(_abandon_with_the_sync_client, network)
    assert unpaid > 0
    assert streamed
    state = await network.state(network.user_key.address)
    assert state is not None
    assert state.output_debt == 0  # paid when the client closed


async def test_zg_chat_interrupted_mid_stream_pays_what_it_was_charged(network: Network) -> None:
    env = {**zg_env(network), "ZG_SERVICE": SERVICE}
    cwd = network.state_dir.parent
    created = await run_zg("account", "create", "--deposit", str(DEPOSIT), env=env, cwd=cwd)
    assert created.code == 0, created.stderr
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "zg"),
        "chat",
        "tell me a long story",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(cwd), **env},
        cwd=cwd,
        # As from a terminal: a suite started in the background (`cmd &` in a script) ignores
        # SIGINT, children inherit that, and zg chat then ran to its end and exited 0.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stdout is not None
    assert await process.stdout.read(1)  # the reply has started
    process.send_signal(signal.SIGINT)
    out, err = await process.communicate()
    assert process.returncode == 130, f"stdout ends {out[-300:]!r}; stderr {err.decode()}"
    assert b"Traceback" not in err
    state = await network.state(network.user_key.address)
    assert state is not None
    assert state.unsettled > 0  # the interrupted request was charged for what it relayed
    assert state.output_debt == 0  # and its output fee paid before exiting
