# SPDX-License-Identifier: Apache-2.0
"""Reading what a test's services published to JetStream, and making the streams afresh."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

import nats
from nats.js import JetStreamContext

from zg_shared.bus import STREAM_CONFIGS
from zg_shared.bus import connect as connect_nats
from zg_shared.busadmin import prepare_streams
from zg_shared.deployment import ALL_STREAMS
from zg_shared.natsauth import NatsCredentials


async def stream_events(
    js: JetStreamContext, subjects: set[str], stream: str = "ZG_SERVING"
) -> list[tuple[str, dict[str, Any]]]:
    """(subject, payload) of every message on `subjects`, in stream order; [] if no stream."""
    try:
        info = await js.stream_info(stream)
    except nats.js.errors.NotFoundError:
        return []
    found: list[tuple[str, dict[str, Any]]] = []
    if info.state.messages == 0:  # an empty stream reports first_seq 0, which get_msg refuses
        return found
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(stream, seq)
        if msg.subject in subjects and msg.data:
            found.append((msg.subject, json.loads(msg.data)))
    return found


async def drop_streams(nats_url: str) -> None:
    """No stream left by an earlier test (as NATS's admin: `nats_url` names the user)."""
    client = await connect_nats(nats_url)
    try:
        js = client.jetstream()
        for name in ALL_STREAMS:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(name)
    finally:
        await client.close()


async def fresh_streams(nats_url: str, rpc_url: str | None = None, contract: str = "") -> None:
    """New empty streams, made by the admin step as a deployment's are (the services may not
    make them): stamped with the deployment of `contract` on the chain at `rpc_url`, or with
    no stamp for a test whose services check none (the prover)."""
    await drop_streams(nats_url)
    if rpc_url is not None:
        await prepare_streams(nats_url, rpc_url, contract)
        return
    client = await connect_nats(nats_url)
    try:
        for config in STREAM_CONFIGS:
            await client.jetstream().add_stream(config)
    finally:
        await client.close()


@dataclass(frozen=True)
class NatsLogins:
    """The session's NATS server and its users' passwords: settings that log a service in
    as its own user, as a deployment does (deploy/k8s/base/nats/auth.conf)."""

    server_url: str
    credentials: NatsCredentials

    def settings(self, user: str) -> dict[str, Any]:
        return {
            "nats_url": self.server_url,
            "nats_username": user,
            "nats_password": self.credentials.passwords[user],
        }
