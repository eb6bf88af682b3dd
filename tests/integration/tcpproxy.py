# SPDX-License-Identifier: Apache-2.0
"""A TCP forwarder whose endpoint a test can take down and bring back: a real outage."""

from __future__ import annotations

import asyncio
import contextlib

from zg_shared.localservers import free_port


class TcpProxy:
    """Forwards a local port to a server's (anvil, Redis); `stop` takes the endpoint down
    (connections refused, open ones cut), `start` brings it back on the same port. A real
    outage, not a mock. With several target ports, one address in front of several servers
    (a load balancer): each connection goes to the next in turn that accepts it."""

    def __init__(self, target_port: int, *more_ports: int) -> None:
        self.target_port = target_port
        self.targets = [target_port, *more_ports]
        self._next = 0
        self.accepted = dict.fromkeys(self.targets, 0)  # connections each target took
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._pipes):
            task.cancel()
        for writer in list(self._writers):
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in self.targets:
            port = self.targets[self._next % len(self.targets)]
            self._next += 1
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
                self.accepted[port] += 1
                break
            except OSError:  # that one is down: the next
                continue
        else:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.close()
        self._writers.discard(sink)
