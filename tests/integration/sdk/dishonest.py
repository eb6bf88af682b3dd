# SPDX-License-Identifier: Apache-2.0
"""A dishonest provider, played by a small real HTTP server.

It answers the SDK's paid requests as a provider trying to overcharge would: whatever reply,
usage and output fee the test asks for, with receipts signed by the service's registered key
(so only the SDK's own checks stand between it and the user's money), the receipt in the
headers (plain) or as the gateway's SSE comment (streams), and kept for
`GET /v1/proxy/{service}/signature/{id}`. It checks nothing and bills nobody: what matters is
what the SDK accepts and owes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from eth_account.signers.local import LocalAccount

from zg_shared.crypto import request_message
from zg_shared.localservers import free_port
from zg_shared.receipts import Receipt, sign_receipt


@dataclass(frozen=True)
class Asked:
    """One paid request as the dishonest provider received it."""

    user: str
    nonce: int
    fee: int
    body: dict[str, Any]
    raw: bytes
    signature: str
    previous_output_fee: int


@dataclass(frozen=True)
class Answer:
    text: str
    completion_tokens: int | None
    output_fee: int


Behaviour = Callable[[Asked], Awaitable[Answer]]


@dataclass
class DishonestProvider:
    provider: str
    receipt_key: LocalAccount
    behaviour: Behaviour
    asked: list[Asked] = field(default_factory=list)
    receipts: dict[str, dict[str, Any]] = field(default_factory=dict)
    server: TestServer | None = None
    # Streams: leave out the receipt comment, so the SDK asks for the stored receipt.
    stream_comment: bool = True
    # Streams: sign and store the receipt over this response body instead of the one sent.
    stream_receipt_body: bytes | None = None
    # Empty choices (index 1, 2, ...) added to every reply after the real one.
    extra_choices: int = 0
    # Streams: events sent after `[DONE]` (before the receipt comment), which no client shows.
    after_done: bytes = b""
    # Streams: the line that ends the events (any SSE spelling an openai client stops at).
    done_line: bytes = b"data: [DONE]"
    # Fields added to the first choice of every reply (plain) or of the first event (streams).
    choice_extra: dict[str, Any] = field(default_factory=dict)
    # Sent instead of the reply's JSON (plain), or of its events (streams), as it is.
    raw_reply: bytes | None = None
    # Answer a request that asked to stream with a plain JSON reply (no client shows it).
    plain_for_streams: bool = False
    # (status, error code) answered to the next paid requests, in order, before serving any.
    refusals: list[tuple[int, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/proxy/{service}/{endpoint:.+}", self._paid)
        app.router.add_get("/v1/proxy/{service}/signature/{request_id}", self._receipt)
        self.server = TestServer(app, port=free_port())
        await self.server.start_server()

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    async def _paid(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        asked = Asked(
            user=request.headers["Address"],
            nonce=int(request.headers["Nonce"]),
            fee=int(request.headers["Fee"]),
            body=json.loads(raw) if raw.strip() else {},
            raw=raw,
            signature=request.headers["Signature"],
            previous_output_fee=int(request.headers["Previous-Output-Fee"]),
        )
        self.asked.append(asked)
        if self.refusals:
            status, code = self.refusals.pop(0)
            return web.json_response({"error": {"code": code, "message": code}}, status=status)
        if request.match_info["endpoint"] != "chat/completions":
            return await self._reply(request, asked, json.dumps({"paid": asked.fee}).encode(), 0)
        answer = await self.behaviour(asked)
        usage = (
            {"completion_tokens": answer.completion_tokens}
            if answer.completion_tokens is not None
            else None
        )
        if asked.body.get("stream") is True and not self.plain_for_streams:
            return await self._stream(request, asked, answer, usage)
        reply = {
            "id": "dishonest",
            "object": "chat.completion",
            "created": 1,
            "model": asked.body.get("model", "m"),
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": answer.text if i == 0 else ""},
                    "finish_reason": "stop",
                    **(self.choice_extra if i == 0 else {}),
                }
                for i in range(1 + self.extra_choices)
            ],
            **({"usage": {**usage, "prompt_tokens": 1, "total_tokens": 1}} if usage else {}),
        }
        body = json.dumps(reply).encode() if self.raw_reply is None else self.raw_reply
        return await self._reply(request, asked, body, answer.output_fee)

    def _sign(self, asked: Asked, response: bytes, output_fee: int) -> tuple[str, str]:
        request_id = uuid.uuid4().hex
        receipt = Receipt.for_bodies(
            request_message(asked.user, self.provider, asked.nonce, asked.fee),
            asked.raw,
            response,
            output_fee,
        )
        signature = sign_receipt(receipt, self.receipt_key)
        self.receipts[request_id] = {
            "id": request_id,
            "signature": signature,
            **receipt.model_dump(mode="json"),
        }
        return request_id, signature

    async def _reply(
        self, request: web.Request, asked: Asked, body: bytes, output_fee: int
    ) -> web.Response:
        request_id, signature = self._sign(asked, body, output_fee)
        return web.Response(
            body=body,
            content_type="application/json",
            headers={
                "ZG-Res-Key": request_id,
                "ZG-Output-Fee": str(output_fee),
                "ZG-Signature": signature,
            },
        )

    async def _stream(
        self, request: web.Request, asked: Asked, answer: Answer, usage: dict[str, Any] | None
    ) -> web.StreamResponse:
        events: list[dict[str, Any]] = [
            {
                "choices": [
                    {
                        "index": i,
                        "delta": {"content": answer.text if i == 0 else ""},
                        **(self.choice_extra if i == 0 else {}),
                    }
                ]
            }
            for i in range(1 + self.extra_choices)
        ]
        if usage is not None:
            events.append({"choices": [], "usage": usage})
        body = b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events)
        if self.raw_reply is not None:
            body = b"data: " + self.raw_reply + b"\n\n"
        body += self.done_line + b"\n\n" + self.after_done
        signed = body if self.stream_receipt_body is None else self.stream_receipt_body
        request_id, signature = self._sign(asked, signed, answer.output_fee)
        response = web.StreamResponse(headers={"ZG-Res-Key": request_id})
        response.content_type = "text/event-stream"
        await response.prepare(request)
        await response.write(body)
        comment = (
            f": zg-receipt id={request_id} output_fee={answer.output_fee} signature={signature}"
        )
        if self.stream_comment:
            await response.write(comment.encode() + b"\n\n")
        await response.write_eof()
        return response

    async def _receipt(self, request: web.Request) -> web.Response:
        found = self.receipts.get(request.match_info["request_id"])
        if found is None:
            return web.json_response({"error": {"code": "unknown_receipt"}}, status=404)
        return web.json_response(found)
