# SPDX-License-Identifier: Apache-2.0
"""Wiring: broker, router, health server, telemetry. `create_app(settings)` builds it all."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from faststream import FastStream
from faststream.nats import NatsBroker

from zg_prover.backends import Prover, select_backend
from zg_prover.config import ProverSettings
from zg_prover.handlers import create_router
from zg_prover.metrics import ProverMetrics
from zg_prover.queue import QueueDepthReporter
from zg_prover.service import ProverService
from zg_shared import devkeys
from zg_shared.bus import SERVING_STREAM, service_broker
from zg_shared.chain import connect
from zg_shared.chain.reachable import chain_id_when_reachable
from zg_shared.deployment import require_streams
from zg_shared.health import HealthServer
from zg_shared.telemetry import Telemetry, setup_telemetry

SERVICE_NAME = "zg-prover"
KEY_MANIFEST = "manifest.json"  # written by scripts/zk_setup.py beside the proving key
# On SIGTERM a proof in flight gets this long to finish; after that JetStream redelivers it.
GRACEFUL_TIMEOUT_S = 120.0


@dataclass
class ProverApp:
    app: FastStream
    broker: NatsBroker
    health: HealthServer
    backend: Prover

    async def start(self) -> None:
        await self.app.start()

    async def stop(self) -> None:
        await self.app.stop()


def create_app(
    settings: ProverSettings,
    *,
    backend: Prover | None = None,
    telemetry: Telemetry | None = None,
) -> ProverApp:
    telemetry = telemetry or setup_telemetry(SERVICE_NAME)
    backend = backend or select_backend(
        settings.backend,
        settings.circuit_sizes,
        keys_dir=settings.keys_dir,
        allow_dev=settings.allow_dev_keys,
        cache=settings.zk_cache,
    )
    for pipeline in backend.pipelines.values():
        keys = pipeline.keys
        log = logging.getLogger(SERVICE_NAME)
        (log.warning if keys.dev else log.info)(
            "%s, witness %s", keys.describe(), pipeline.witness.name
        )
    broker = service_broker(settings.nats_access(), SERVICE_NAME, telemetry, GRACEFUL_TIMEOUT_S)
    metrics = ProverMetrics(telemetry.meter("zg_prover"), backend.name)
    broker.include_router(
        create_router(
            ProverService(backend, instance=settings.instance_id),
            broker,
            metrics,
            settings.durable_name,
            settings.heartbeat_s,
            settings.nats_access().subscriber_inbox_prefix(),
            settings.concurrency,
        )
    )

    async def nats_ready() -> None:
        if not await broker.ping(timeout=1.0):
            raise ConnectionError("NATS does not answer")

    async def circuit_ready() -> None:
        missing = backend.missing_artifacts()
        if missing:
            raise FileNotFoundError(f"missing {', '.join(map(str, missing))}")

    health = HealthServer(
        settings.http_host, settings.http_port, {"nats": nats_ready, "circuit": circuit_ready}
    )
    queue = QueueDepthReporter(broker, SERVING_STREAM.name, settings.durable_name, metrics)

    async def check_streams() -> None:
        """The admin step made the stream; the prover's NATS user may not."""
        await require_streams(settings.nats_access(), [SERVING_STREAM.name])

    async def refuse_dev_keys() -> None:
        """Single-party keys let whoever ran the setup forge proofs: local chains only."""
        assert backend is not None
        chain_id = settings.chain_id
        if chain_id is None:
            w3 = connect(settings.rpc_url)
            try:
                chain_id = await chain_id_when_reachable(w3)
            finally:
                await w3.provider.disconnect()
        for pipeline in backend.pipelines.values():
            keys = pipeline.keys
            # A key without a manifest counts as single-party.
            manifest = keys.manifest or keys.key.parent / KEY_MANIFEST
            devkeys.refuse_single_party_key_off_dev_chain(chain_id, manifest)

    app = FastStream(
        broker,
        logger=logging.getLogger(SERVICE_NAME),
        on_startup=[refuse_dev_keys, check_streams, health.start],
        after_startup=[queue.start],
        on_shutdown=[queue.stop],
        after_shutdown=[health.stop],
    )
    return ProverApp(app=app, broker=broker, health=health, backend=backend)
