# SPDX-License-Identifier: Apache-2.0
"""Debian's Prometheus, run by a test with the repository's deploy/prometheus/prometheus.yml
rendered for the test network: the same jobs and rule file, with each job's target replaced
by the address of the process that job scrapes here (jobs of components this machine cannot
run are left out, each with its reason), scraped every second, and the feature flags
docker-compose.yml gives its Prometheus (exemplar storage)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.unit.deploy.compose import load_compose
from zg_shared.localservers import free_port

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS = shutil.which("prometheus")
# Scrape jobs of the repository's config whose component has no package here.
NOT_RUN_HERE = {
    "nats": "prometheus-nats-exporter has no Debian or PyPI package and no registry is reachable",
    "otel-collector": "the OpenTelemetry Collector has no Debian or PyPI package",
}


def render(targets: dict[str, str], prometheus_address: str) -> dict[str, Any]:
    """The repository's config for this network; `targets`: job -> host:port."""
    config: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(RULES)]
    jobs = []
    for job in config["scrape_configs"]:
        name = job["job_name"]
        if name in NOT_RUN_HERE:
            continue
        address = prometheus_address if name == "prometheus" else targets[name]
        job["static_configs"] = [{"targets": [address]}]
        jobs.append(job)
    unknown = set(targets) - {j["job_name"] for j in jobs}
    assert not unknown, f"the repository's config scrapes no job {unknown}"
    config["scrape_configs"] = jobs
    return config


def feature_flags() -> list[str]:
    """The `--enable-feature` flags of docker-compose.yml's Prometheus."""
    command: list[str] = load_compose()["services"]["prometheus"]["command"]
    return [arg for arg in command if arg.startswith("--enable-feature=")]


@dataclass
class Prometheus:
    workdir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self, targets: dict[str, str]) -> dict[str, Any]:
        """Starts Prometheus on a free port; returns the config it runs with."""
        assert PROMETHEUS is not None
        self.port = free_port()
        config = render(targets, f"127.0.0.1:{self.port}")
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        with (self.workdir / "prometheus.log").open("wb") as log:
            self.process = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={path}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    *feature_flags(),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return config

    async def start(self, targets: dict[str, str]) -> dict[str, Any]:
        config = self.spawn(targets)
        assert self.process is not None
        deadline = asyncio.get_running_loop().time() + 60
        async with aiohttp.ClientSession() as http:
            while True:
                assert self.process.poll() is None, f"prometheus exited: {self.workdir}"
                try:
                    async with http.get(f"{self.url}/-/ready") as response:
                        if response.status == 200:
                            return config
                except aiohttp.ClientError:
                    pass
                assert asyncio.get_running_loop().time() < deadline, "prometheus not ready"
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    async def api(self, path: str, **params: str) -> Any:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.url}/api/v1/{path}", params=params) as response,
        ):
            body = await response.json()
        assert body["status"] == "success", body
        return body["data"]

    async def query(self, promql: str) -> list[dict[str, Any]]:
        data = await self.api("query", query=promql)
        result: list[dict[str, Any]] = data["result"]
        return result

    async def exemplars(self, promql: str) -> list[dict[str, Any]]:
        """/api/v1/query_exemplars over the last hour: one entry per series, with the series'
        labels (`seriesLabels`) and its `exemplars` (`labels`, `value`, `timestamp`)."""
        end = time.time()
        result: list[dict[str, Any]] = await self.api(
            "query_exemplars", query=promql, start=str(end - 3600), end=str(end + 60)
        )
        return result
