# SPDX-License-Identifier: Apache-2.0
"""HTTP/1.1 requests written byte for byte: headers sent twice, in any case, in any order, with
any value, which a client library would merge, normalise or refuse."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from urllib.parse import urlsplit

Header = tuple[str | bytes, str | bytes]


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")


def _dechunk(body: bytes) -> bytes:
    out, rest = bytearray(), body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size + 2 :]
    return bytes(out)


async def raw_request(
    url: str,
    path: str | bytes,
    headers: Sequence[Header],
    body: bytes = b"",
    method: str | bytes = "POST",
    timeout_s: float = 30.0,
) -> tuple[int, bytes]:
    """(status, body) of one request on a connection of its own, status 0 if the server closed
    it without an answer; the request's bytes are exactly `method path`, the headers given,
    Content-Length (unless given) and the body."""
    where = urlsplit(url)
    head = [b"%s %s HTTP/1.1" % (_bytes(method), _bytes(path)), b"Host: " + _bytes(where.netloc)]
    head += [_bytes(name) + b": " + _bytes(value) for name, value in headers]
    if not any(_bytes(name).lower() == b"content-length" for name, _ in headers):
        head.append(b"Content-Length: %d" % len(body))
    head.append(b"Connection: close")
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection(where.hostname, where.port)
        try:
            # A server may answer (413, say) and close before it has read the whole body.
            with contextlib.suppress(ConnectionError):
                writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
                await writer.drain()
            try:
                reply = await reader.read()
            except ConnectionResetError:
                reply = b""
        finally:
            writer.close()
    if not reply:
        return 0, b""  # closed without an answer
    status_line, _, rest = reply.partition(b"\r\n")
    response_head, _, response_body = rest.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in response_head.lower():
        response_body = _dechunk(response_body)
    return int(status_line.split()[1]), response_body
