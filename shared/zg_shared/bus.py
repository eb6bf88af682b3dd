# SPDX-License-Identifier: Apache-2.0
"""The JetStream streams, how services connect to NATS, and how events are published.

Two durable streams, file storage, de-duplication by `Nats-Msg-Id` within a window:
`ZG_SERVING` (`serving.>`: what the provider served, settlement and proofs; the durable
record of what users owe) and `ZG_CHAIN` (`chain.>`: what the indexer saw on chain).
An admin step creates them (`zg-bus-admin create-streams`, zg_shared.busadmin), never the
services: their NATS users (deploy/k8s/base/nats/auth.conf) may not create, update, purge or
delete a stream. `ZG_SERVING` denies deleting and purging messages to everyone, the admin too.

`NatsAccess` is where and as whom a process connects: the URL, its NATS user and password
(a secret file, see ServiceSettings), and the CA for TLS. Functions here take one, or a bare
URL (tests and tools, with any user in the URL itself).

On a JetStream cluster, `NATS_URL` lists several servers, comma-separated (`nats_servers`:
nats-py wants a list), and `NATS_STREAM_REPLICAS` keeps each stream on that many servers
(3 in production: a stream stays writable with one server lost). Durable consumers leave
their replica count at 0, which JetStream reads as the stream's.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import nats
from faststream.nats import JStream, NatsBroker, PubAck
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from faststream.nats.security import NatsSecurity, NatsUserPassword
from nats.aio.client import Client as NatsClient
from nats.errors import ConnectionReconnectingError, NoRespondersError, StaleConnectionError
from nats.js import api
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import BadRequestError, NoStreamResponseError
from pydantic import BaseModel, ConfigDict, SecretStr

from zg_shared.events.base import Event
from zg_shared.natsauth import inbox_prefix
from zg_shared.telemetry import Telemetry

log = logging.getLogger(__name__)
# Publishers retry for at most this long; JetStream drops a repeated Nats-Msg-Id inside it.
DUPLICATE_WINDOW_S = 600.0
# publish_event's own retries: a leader election takes a few seconds, a lost server's clients
# reconnect within a few more.
PUBLISH_RETRY_S = 30.0
# What a publish meets while a cluster recovers (nats-py's TimeoutError is a TimeoutError).
TRANSIENT_PUBLISH_ERRORS = (
    TimeoutError,
    NoRespondersError,
    NoStreamResponseError,
    ConnectionReconnectingError,
    StaleConnectionError,
)
# Served requests are the record of what users owe: keep them far longer than any
# settlement can take (the refund lock time bounds it).
SERVING_MAX_AGE_S = 30 * 24 * 3600.0
CHAIN_MAX_AGE_S = 7 * 24 * 3600.0

STREAM_CONFIGS = (
    StreamConfig(
        name="ZG_SERVING",
        subjects=["serving.>"],
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_S,
        max_age=SERVING_MAX_AGE_S,
        # What users owe: no message is deleted or purged through the API, by anyone.
        deny_delete=True,
        deny_purge=True,
    ),
    StreamConfig(
        name="ZG_CHAIN",
        subjects=["chain.>"],
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_S,
        max_age=CHAIN_MAX_AGE_S,
    ),
)
# For faststream subscribers: the streams exist already (the admin step), so they only bind.
SERVING_STREAM = JStream(name="ZG_SERVING", declare=False)
CHAIN_STREAM = JStream(name="ZG_CHAIN", declare=False)
# For a short-lived client that must fail at once (a refused login, no server) rather than
# retry for minutes: `connect(bus, **ONE_TRY)`.
ONE_TRY: dict[str, Any] = {"allow_reconnect": False, "max_reconnect_attempts": 0}

log = logging.getLogger(__name__)


async def _log_error(exc: Exception) -> None:
    """One line per error, where nats-py's own callback logs a traceback for each attempt."""
    log.warning("NATS: %s", exc)


class NatsAccess(BaseModel):
    """Where and as whom to connect to NATS. No username: as the URL says (anonymous, or a
    user and password written in the URL)."""

    model_config = ConfigDict(frozen=True)

    url: str
    username: str = ""
    password: SecretStr = SecretStr("")
    ca_file: Path | None = None

    def _tls(self) -> ssl.SSLContext | None:
        if self.ca_file is None:
            return None
        return ssl.create_default_context(cafile=str(self.ca_file))

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for nats-py's `connect`."""
        options: dict[str, Any] = {"servers": nats_servers(self.url), "error_cb": _log_error}
        if self.username:
            options["user"] = self.username
            options["password"] = self.password.get_secret_value()
            options["inbox_prefix"] = inbox_prefix(self.username)
        tls = self._tls()
        if tls is not None:
            options["tls"] = tls
        return options

    def broker_options(self) -> dict[str, Any]:
        """Keyword arguments for faststream's `NatsBroker`."""
        options: dict[str, Any] = {"servers": nats_servers(self.url)}
        security: NatsSecurity | None = None
        if self.username:
            security = NatsUserPassword(
                self.username, self.password.get_secret_value(), ssl_context=self._tls()
            )
            options["inbox_prefix"] = inbox_prefix(self.username)
        elif self.ca_file is not None:
            security = NatsSecurity(ssl_context=self._tls())
        if security is not None:
            options["security"] = security
        return options

    def subscriber_inbox_prefix(self) -> bytes:
        """For faststream's pull subscribers, which make their own inboxes: this user's."""
        if not self.username:
            return bytes(api.INBOX_PREFIX)
        return f"{inbox_prefix(self.username)}.".encode()

    async def connect(self, **options: Any) -> NatsClient:
        return await nats.connect(**{**self.connect_options(), **options})


def as_access(bus: NatsAccess | str) -> NatsAccess:
    return bus if isinstance(bus, NatsAccess) else NatsAccess(url=bus)


def service_broker(
    access: NatsAccess, service: str, telemetry: Telemetry, graceful_timeout_s: float
) -> NatsBroker:
    """A service's faststream broker: logged in as `access` says, named `service` on the
    server, with a span and metrics for each publish and consume."""
    return NatsBroker(
        **access.broker_options(),
        name=service,
        graceful_timeout=graceful_timeout_s,
        # Through the root logger, so that faststream's lines are JSON like the service's.
        logger=logging.getLogger(f"{service}.bus"),
        middlewares=[
            NatsTelemetryMiddleware(
                tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
            )
        ],
    )


def nats_servers(url: str) -> list[str]:
    """The servers of a `NATS_URL`: one URL, or several separated by commas."""
    servers = [part.strip() for part in url.split(",") if part.strip()]
    if not servers:
        raise ValueError("NATS_URL names no server")
    return servers


async def connect(bus: NatsAccess | str, **options: Any) -> NatsClient:
    """A nats-py client on every server the URL lists: it moves to another one when the
    server it is on goes away (and learns the cluster's other servers from it)."""
    return await as_access(bus).connect(**options)


def stream_configs(replicas: int = 1) -> tuple[StreamConfig, ...]:
    """The streams' configuration with `replicas` copies of each."""
    return tuple(replace(config, num_replicas=replicas) for config in STREAM_CONFIGS)


def shown(url: str) -> str:
    """A NATS URL (or a list of them) fit for a message: any password in it left out."""
    return ",".join(
        urlunsplit(urlsplit(u)._replace(netloc=urlsplit(u).netloc.rpartition("@")[2]))
        for u in nats_servers(url)
    )


def stream_for(subject: str) -> str:
    for config in STREAM_CONFIGS:
        if any(subject.startswith(s.removesuffix(">")) for s in config.subjects or []):
            assert config.name is not None
            return config.name
    raise ValueError(f"no stream takes subject {subject!r}")


async def ensure_streams(bus: NatsAccess | str, replicas: int = 1) -> None:
    """The admin's: creates the streams, or brings an existing one to this configuration (a
    change of `replicas` too: JetStream adds or drops the copies). A service's NATS user may
    not; the admin step (zg_shared.deployment.claim_streams) also stamps them."""
    client = await connect(bus)
    try:
        js = client.jetstream()
        for config in stream_configs(replicas):
            try:
                await js.add_stream(config)
            except BadRequestError:
                # The description is the deployment's stamp (zg_shared.deployment): keep it.
                assert config.name is not None
                current = await js.stream_info(config.name)
                await js.update_stream(replace(config, description=current.config.description))
    finally:
        await client.close()


async def publish_event(
    broker: NatsBroker, event: Event, *, retry_for_s: float = PUBLISH_RETRY_S
) -> PubAck | None:
    """Publishes to JetStream and waits for its ack. A stream answers nothing for a few
    seconds while it elects a new leader (a server of the cluster lost), and a client moving
    to another server is briefly away: the same message is sent again, under the same
    `Nats-Msg-Id` (`event_id`: JetStream stores it once), until it is acked or `retry_for_s`
    has passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + retry_for_s
    delay = 0.1
    while True:
        try:
            return await broker.publish(
                event,
                event.SUBJECT,
                headers={"Nats-Msg-Id": event.event_id},
                stream=stream_for(event.SUBJECT),
            )
        except TRANSIENT_PUBLISH_ERRORS as exc:
            if loop.time() + delay > deadline:
                raise
            log.warning("publishing %s again in %.1fs: %r", event.event_id, delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
