# SPDX-License-Identifier: Apache-2.0
"""Prometheus scrapes each service where it serves /metrics, the same in every deploy file:
the port of deploy/prometheus/prometheus.yml's target is a port the compose service is set to
listen on, and the prometheus.io/port annotation of its Kubernetes pods. (The Prometheus test
renders its own targets from the running processes, so only this ties the files together.)"""

from __future__ import annotations

import pytest

from tests.unit.deploy import kustomize
from tests.unit.deploy.common import DEPLOY, load_yaml, rendered
from tests.unit.deploy.compose import environment, load_compose

SERVICES = ("gateway", "billing", "prover", "chain-indexer")


def scrape_targets() -> dict[str, str]:
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    return {
        job["job_name"]: job["static_configs"][0]["targets"][0] for job in config["scrape_configs"]
    }


@pytest.mark.parametrize("service", SERVICES)
def test_prometheus_compose_and_kubernetes_agree_on_the_metrics_port(service: str) -> None:
    host, port = scrape_targets()[service].split(":")
    assert host == service
    compose = load_compose()["services"][service]
    listens = {v for k, v in environment(compose).items() if k.endswith("_PORT")}
    assert port in listens, f"compose's {service} listens on {listens}, Prometheus scrapes {port}"
    annotated = {
        doc["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"]
        for doc in rendered("prod")
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == service
        and kustomize.pod_spec(doc) is not None
    }  # fmt: skip
    assert annotated == {port}
