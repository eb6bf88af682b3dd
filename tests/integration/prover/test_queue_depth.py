# SPDX-License-Identifier: Apache-2.0
"""The prover reports its queue from its durable JetStream consumer (zg_prover_queue_pending,
what ZgProverBacklog watches), read from a real NATS: waiting requests, then the one a prover
holds without an ack."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest
from faststream.nats import NatsBroker
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint

from tests.integration.jetstream import fresh_streams
from zg_prover.metrics import ProverMetrics
from zg_prover.queue import QueueDepthReporter
from zg_shared.events import SettlementRequestedV1

DURABLE = "prover-queue-test"


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    await fresh_streams(nats_url)
    client = await nats.connect(nats_url)
    stream = client.jetstream()
    await stream.add_consumer(
        "ZG_SERVING",
        ConsumerConfig(
            durable_name=DURABLE,
            filter_subject=SettlementRequestedV1.SUBJECT,
            ack_policy=AckPolicy.EXPLICIT,
        ),
    )
    yield stream
    await client.close()


def gauges(reader: InMemoryMetricReader) -> dict[str, float]:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        metric.name: point.value
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        for point in metric.data.data_points
        if metric.name.startswith("zg_prover_queue") and isinstance(point, NumberDataPoint)
    }


async def test_the_queue_gauges_follow_the_consumer(nats_url: str, js: JetStreamContext) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics = ProverMetrics(provider.get_meter("test"), "test-backend")
    broker = NatsBroker(nats_url)
    await broker.connect()
    reporter = QueueDepthReporter(broker, "ZG_SERVING", DURABLE, metrics)
    try:
        assert gauges(reader) == {}  # nothing read yet: absent, not a made-up 0
        for i in range(3):
            await js.publish(SettlementRequestedV1.SUBJECT, f"request {i}".encode())
        await reporter.read_once()
        assert gauges(reader) == {"zg_prover_queue_pending": 3, "zg_prover_queue_ack_pending": 0}

        subscription = await js.pull_subscribe_bind(DURABLE, "ZG_SERVING")
        [taken] = await subscription.fetch(1)
        await reporter.read_once()
        assert gauges(reader) == {"zg_prover_queue_pending": 2, "zg_prover_queue_ack_pending": 1}
        await taken.ack()
    finally:
        await broker.stop()
        provider.shutdown()
