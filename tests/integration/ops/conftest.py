# SPDX-License-Identifier: Apache-2.0
"""The network an SRE observes: every service as a process (zg_shared.localnet) sending its
traces with the real OTLP/HTTP exporter to a receiver in the test, Debian's Prometheus
scraping their /metrics with the repository's config and alert rules, and a user's paid
requests through the gateway, settled on chain. Built once for the metric and trace tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from tests.integration.ops.otlp import OtlpReceiver
from tests.integration.ops.prometheus import PROMETHEUS, Prometheus
from tests.integration.ops.traffic import Traffic, send_paid_requests
from tests.integration.polling import eventually
from zg_shared.localnet import LocalNetwork

USER = 7  # an anvil account no other setup step uses
# The settlement must cover both chats and the fee-only request (threshold: 1 wei), and the
# batch processor must send spans soon after they end.
OVERRIDES = {"BILLING_THRESHOLD_FEE_WEI": "1", "BILLING_TICK_S": "0.3"}
# The job in deploy/prometheus/prometheus.yml that scrapes each service.
JOBS = {
    "gateway": "gateway",
    "billing": "billing",
    "prover": "prover",
    "chain-indexer": "chain-indexer",
}


@dataclass
class Observed:
    net: LocalNetwork
    receiver: OtlpReceiver
    prometheus: Prometheus
    scrape_config: dict[str, object]
    traffic: Traffic


def known_secrets(observed: Observed) -> set[str]:
    """Every secret of the network and the user's traffic, lower-case hex without 0x: keys,
    Redis passwords, request and receipt signatures. None may reach a span or an exemplar."""
    net, traffic = observed.net, observed.traffic
    secrets = {
        traffic.wallet_key,
        traffic.signing_key.hex(),
        *(a.private_key for a in net.accounts[:3]),  # deployer, provider wallet, receipt key
        *(net.redis_credentials.passwords.values() if net.redis_credentials else ()),
        *(r.request_signature for r in traffic.records),
        *(r.receipt_signature for r in traffic.records),
    }
    return {s.lower().removeprefix("0x") for s in secrets}


def metrics_address(net: LocalNetwork, service: str) -> str:
    """host:port of the service's /metrics (where its readiness is checked)."""
    return urlsplit(net.processes[service].ready_url).netloc


@pytest.fixture(scope="package")
async def observed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Observed]:
    if PROMETHEUS is None:
        pytest.skip(
            "prometheus missing: apt-get install prometheus (scripts/setup.sh does as root)"
        )
    workdir = tmp_path_factory.mktemp("observed")
    receiver = OtlpReceiver()
    runner: web.AppRunner = await receiver.start()
    net = LocalNetwork(
        workdir / "net",
        overrides=OVERRIDES,
        environment={
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        },
    )
    prometheus = Prometheus(workdir / "prometheus")
    prometheus.workdir.mkdir()
    try:
        await net.start()
        config = await prometheus.start(
            {job: metrics_address(net, service) for service, job in JOBS.items()}
        )
        traffic = await send_paid_requests(net, USER, requests=2, home=workdir / "user")
        yield Observed(net, receiver, prometheus, config, traffic)
    finally:
        prometheus.stop()
        await net.stop()
        await runner.cleanup()


async def until_all_answer(
    queries: dict[str, str], answer: Callable[[str], Awaitable[object]], missing: str
) -> None:
    """Polls each query (name -> PromQL) through `answer` until every one has answered
    something; fails naming those that never did."""
    empty = dict(queries)

    async def all_answer() -> bool:
        for name, expr in list(empty.items()):
            if await answer(expr):
                del empty[name]
        return not empty

    try:
        await eventually(all_answer, within_s=60, what=f"{missing} for every query")
    except AssertionError:
        raise AssertionError(f"no {missing} for {sorted(empty)}") from None
