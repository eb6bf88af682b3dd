# SPDX-License-Identifier: Apache-2.0
"""A user who stops reading a long stream. The relay then waits on the user, and so does the
backend behind it; on one wall clock that wait ran out the backend's timeout, the stream was
voided as the backend's failure, and the user read what had been relayed, for free (a reply of
20,000 words: some 13,000 read, nothing charged). The backend's clock now counts only the
time spent waiting for the backend; the user's reading has its own allowance, past which the
stream ends as a hang-up does: charged for what was relayed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.integration.gateway.conftest import INPUT_PRICE, OUTPUT_PRICE, Provider, User, chat
from tests.integration.polling import eventually
from tests.integration.rawhttp import _dechunk
from zg_sample_backend import BackendSettings
from zg_shared.localservers import free_port

pytestmark = pytest.mark.slow
REPLY_WORDS = 20_000  # some 4.6 MB of SSE: more than the sockets between them hold
WORDS = "tell me a long story"


@pytest.fixture
def backend_settings() -> BackendSettings:
    return BackendSettings(port=free_port(), created=1_700_000_000, reply_words=REPLY_WORDS)


@pytest.fixture
def gateway_overrides() -> dict[str, Any]:
    return {"backend_timeout_s": 3.0, "client_stall_s": 1.0}


async def _stream_read_late(provider: Provider, user: User, pause_s: float) -> bytes:
    """Sends a signed streaming request on a socket with a small window, reads nothing for
    `pause_s`, then everything there is."""
    headers = user.headers(provider.address, len(WORDS.split()) * INPUT_PRICE)
    body = json.dumps(chat(WORDS, stream=True, max_tokens=REPLY_WORDS)).encode()
    where = urlsplit(provider.url)
    assert where.hostname is not None
    assert where.port is not None
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (where.hostname, where.port))
    # A small buffer: asyncio's reader stops taking bytes off the socket once it holds 8 KiB.
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    head = [
        "POST /v1/proxy/chat/chat/completions HTTP/1.1",
        f"Host: {where.netloc}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    writer.write("\r\n".join(head).encode() + b"\r\n\r\n" + body)
    await writer.drain()
    await asyncio.sleep(pause_s)
    received = bytearray()
    with contextlib.suppress(ConnectionResetError):
        while chunk := await reader.read(1 << 16):
            received += chunk
    writer.close()
    return bytes(received)


def _words(received: bytes) -> int:
    """Words of generated text in the SSE events received whole."""
    _, _, payload = received.partition(b"\r\n\r\n")
    words = 0
    for line in _dechunk(payload).decode(errors="replace").split("\n"):
        if not line.startswith("data: {"):
            continue
        try:
            event = json.loads(line[6:])
        except ValueError:
            continue  # the last one, cut where the connection closed
        for choice in event.get("choices", []):
            words += len((choice.get("delta") or {}).get("content", "").split())
    return words


async def test_a_stream_the_user_stops_reading_is_charged_for_what_it_relayed(
    provider: Provider,
) -> None:
    user = provider.users[0]
    received = await _stream_read_late(provider, user, pause_s=5.0)  # past the backend's 3 s

    async def booked() -> bool:
        return len(await provider.served_events()) == 1

    await eventually(booked, what="the request booked")
    [event] = await provider.served_events()
    assert (event["outcome"], event["reason"]) == ("charged", "client_stalled")
    read = _words(received)
    assert 0 < read <= event["output_units"] < REPLY_WORDS  # paid for at least what was read
    state = await provider.state(user)
    assert state is not None
    assert (state.unsettled, state.reserved) == (len(WORDS.split()) * INPUT_PRICE, 0)
    assert state.output_debt == event["output_units"] * OUTPUT_PRICE
