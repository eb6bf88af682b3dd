# SPDX-License-Identifier: Apache-2.0
"""Wiring: broker, router, settler loop, health server, telemetry. `create_app(settings)`
builds it all; `BillingApp.start/stop` run it in-process (tests), `__main__` runs it until a
signal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field

from eth_account import Account as EthAccount
from faststream import FastStream
from faststream.nats import NatsBroker
from redis.asyncio import Redis

from zg_billing.book import Book
from zg_billing.config import BillingSettings
from zg_billing.evidence import Evidence
from zg_billing.handlers import create_router
from zg_billing.intake import Intake
from zg_billing.lease import Lease
from zg_billing.metrics import BillingMetrics
from zg_billing.policy import Policy
from zg_billing.rebuild import Rebuilder
from zg_billing.records import AttemptTracker, SettlementStore
from zg_billing.settler import Settler, SettlerConfig
from zg_shared.accounts import AccountStore
from zg_shared.bus import CHAIN_STREAM, SERVING_STREAM, publish_event, service_broker
from zg_shared.chain import ServingClient, connect
from zg_shared.chain.reachable import chain_id_when_reachable, when_reachable
from zg_shared.deployment import bind
from zg_shared.events import Event
from zg_shared.health import HealthServer
from zg_shared.redisconn import primary_address, redis_client
from zg_shared.telemetry import Telemetry, setup_telemetry

SERVICE_NAME = "zg-billing"
EXIT_DEPOSED = 75  # another instance holds the lease: restart as the standby
# On SIGTERM a settlement being submitted gets this long; after that JetStream redelivers it.
GRACEFUL_TIMEOUT_S = 60.0
log = logging.getLogger(__name__)


def _exit_deposed() -> None:
    """A deposed leader stops at once, mid-work: anything it finished now would be a write
    the new leader does not know of. Its unacked messages go to the new leader."""
    logging.shutdown()
    os._exit(EXIT_DEPOSED)


@dataclass
class BillingApp:
    app: FastStream
    broker: NatsBroker
    health: HealthServer
    settler: Settler
    rebuilder: Rebuilder
    redis: Redis
    settings: BillingSettings
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _loop: asyncio.Task[None] | None = None
    _primary: tuple[str, int] | None = None

    def _primary_moved(self) -> bool:
        """Whether Sentinel promoted another Redis since the last look. Replication is
        asynchronous: the new primary may lack the last writes of the old, among them
        served requests whose stream messages billing had acked. Replaying the stream (the
        rebuild is idempotent) puts them back; the gateway's outbox waits for its replica
        (GATEWAY_REDIS_WAIT_REPLICAS), so what it served is on the stream."""
        now = primary_address(self.redis)
        moved = self._primary is not None and now is not None and now != self._primary
        if moved:
            log.warning(
                "Redis primary moved from %s to %s: rebuilding the view", self._primary, now
            )
        self._primary = now or self._primary
        return moved

    async def start(self) -> None:
        await self.app.start()

    async def stop(self) -> None:
        await self.app.stop()

    async def run_policy(self) -> None:
        """The settler's loop: rebuild the view if Redis lost it, then settle what is due."""
        next_rebuild_check = 0.0
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            try:
                if loop.time() >= next_rebuild_check:
                    next_rebuild_check = loop.time() + self.settings.rebuild_check_s
                    if await self.rebuilder.needed() or self._primary_moved():
                        await self.rebuilder.run()
                await self.settler.tick()
            except Exception:  # Redis, NATS or the chain away for a moment: try again
                log.exception("settlement pass failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.tick_s):
                    await self._stop.wait()


def create_app(settings: BillingSettings, *, telemetry: Telemetry | None = None) -> BillingApp:
    telemetry = telemetry or setup_telemetry(SERVICE_NAME)
    broker = service_broker(settings.nats_access(), SERVICE_NAME, telemetry, GRACEFUL_TIMEOUT_S)
    redis = redis_client(settings)
    w3 = connect(settings.rpc_url)
    chain = ServingClient(
        w3,
        settings.serving_address,
        EthAccount.from_key(settings.provider_private_key.get_secret_value()),
        receipt_timeout=settings.tx_timeout_s,
        bump_after_s=settings.bump_after_s,
    )
    metrics = BillingMetrics(telemetry.meter("zg_billing"))
    book = Book(redis)
    accounts = AccountStore(redis)
    evidence = Evidence(chain, metrics)
    intake = Intake(book, accounts, chain, metrics, evidence)

    async def publish(event: Event) -> object:
        return await publish_event(broker, event)

    lease = Lease(redis, chain.sender, settings.lease_ttl_s, on_lost=_exit_deposed)
    settler = Settler(
        book=book,
        records=SettlementStore(redis),
        accounts=accounts,
        attempts=AttemptTracker(redis, settings.max_attempts, settings.retry_backoff_s),
        chain=chain,
        publish=publish,
        # Replaced at start, once the contract's lock time is read.
        policy=Policy(
            threshold_fee_wei=settings.threshold_fee_wei, max_age_s=0, sweep_interval_s=1
        ),
        config=SettlerConfig(
            circuit_sizes=tuple(settings.circuit_sizes),
            slot_gas=settings.slot_gas,
            max_chunks_per_user=settings.max_chunks_per_user,
            max_chunks_per_tx=settings.max_chunks_per_tx,
            proof_timeout_s=settings.proof_timeout_s,
            confirm_timeout_s=settings.confirm_timeout_s,
            settle_now_interval_s=settings.settle_now_interval_s,
            confirmations=settings.confirmations,
        ),
        metrics=metrics,
        evidence=evidence,
        fence=lease.check,
    )
    broker.include_router(
        create_router(
            intake,
            settler,
            settings.durable_prefix,
            settings.nats_access().subscriber_inbox_prefix(),
        )
    )

    async def redis_ready() -> None:
        await redis.ping()

    async def nats_ready() -> None:
        if not await broker.ping(timeout=1.0):
            raise ConnectionError("NATS does not answer")

    async def chain_ready() -> None:
        await w3.eth.block_number

    health = HealthServer(
        settings.http_host,
        settings.http_port,
        {"redis": redis_ready, "nats": nats_ready, "chain": chain_ready},
    )
    rebuilder = Rebuilder(redis, intake, settings.nats_access())
    billing = BillingApp(
        app=FastStream(broker, logger=logging.getLogger(SERVICE_NAME)),
        broker=broker,
        health=health,
        settler=settler,
        rebuilder=rebuilder,
        redis=redis,
        settings=settings,
    )

    async def on_startup() -> None:
        # No dev keys off a local chain (the RPC node may not be up yet: wait for it).
        settings.check_chain(await chain_id_when_reachable(w3))
        await bind(
            w3, settings.serving_address, settings.rpc_url, redis, settings.nats_access(),
            [SERVING_STREAM.name, CHAIN_STREAM.name],
        )  # fmt: skip
        await when_reachable(evidence.read_signers)
        settler.policy = Policy.from_lock_time(
            await when_reachable(chain.lock_time),
            threshold_fee_wei=settings.threshold_fee_wei,
            max_age_lock_fraction=settings.max_age_lock_fraction,
            sweep_interval_s=settings.sweep_interval_s,
            full_chunk=max(settings.circuit_sizes) if settings.settle_full_chunks else 0,
            join_fraction=settings.join_fraction,
        )
        await health.start()
        # Connected before it waits, so that a standby is ready (its dependencies answer) and
        # counts as available to a rollout and a disruption budget.
        await broker.connect()
        # The standby waits here, consuming nothing, until the lease is its own.
        await lease.acquire()

    async def after_startup() -> None:
        billing._stop.clear()
        billing._loop = asyncio.create_task(billing.run_policy(), name="settler")

    async def on_shutdown() -> None:
        billing._stop.set()
        if billing._loop is not None:
            await billing._loop

    async def after_shutdown() -> None:
        await lease.release()  # consumers and settler stopped: a standby may take over now
        await health.stop()
        await redis.aclose()
        await w3.provider.disconnect()

    billing.app.on_startup(on_startup)
    billing.app.after_startup(after_startup)
    billing.app.on_shutdown(on_shutdown)
    billing.app.after_shutdown(after_shutdown)
    return billing
