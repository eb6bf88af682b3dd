# SPDX-License-Identifier: Apache-2.0
"""What the deploy tests share: the repository's deploy files, the services' settings classes
(read by introspection, never hard-coded) and the metric names the services really export."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import promql_parser
import yaml
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry
from prometheus_client import Metric as PrometheusMetric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as text_families
from pydantic import AliasChoices, AliasPath
from pydantic_settings import BaseSettings

from tests.unit.deploy import kustomize
from zg_shared.exposition import ExemplarMetricReader, exposition

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
K8S = DEPLOY / "k8s"
OVERLAYS = ("dev", "prod", "gpu")

# Our services, by the name compose and Kubernetes give them: where each reads its settings and
# where its metrics module is (None: it exports no zgserve metrics).
SERVICES: dict[str, tuple[str, str | None]] = {
    "gateway": ("zg_gateway.config", "zg_gateway.metrics"),
    "billing": ("zg_billing.config", "zg_billing.metrics"),
    "prover": ("zg_prover.config", "zg_prover.metrics"),
    "chain-indexer": ("zg_chain_indexer.config", "zg_chain_indexer.metrics"),
    "sample-backend": ("zg_sample_backend.config", None),
}
# Metric name prefix -> service.
METRIC_PREFIXES = {
    "zg_gateway_": "gateway",
    "zg_billing_": "billing",
    "zg_prover_": "prover",
    "zg_indexer_": "chain-indexer",
}
# What Prometheus sends when it scrapes (2.x's default scrape protocols).
OPENMETRICS = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
# Read by the OpenTelemetry SDK itself (zg_shared.telemetry builds its exporter and resource
# from them) in every service built on zg_shared.settings.ServiceSettings.
OTEL_ENV = {
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_SERVICE_NAME",
}
# Jobs that are scripts, not settings classes: the env vars each declares it reads.
DEPLOY_JOB_SCRIPT = DEPLOY / "compose" / "deploy_contracts.py"


@functools.cache
def _rendered(overlay: str) -> str:
    return json.dumps(kustomize.render(K8S / "overlays" / overlay))


def rendered(overlay: str) -> list[dict[str, Any]]:
    """The overlay's manifests (rendered once per session; each call gets its own copy)."""
    docs: list[dict[str, Any]] = json.loads(_rendered(overlay))
    return docs


def load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=kustomize.StrictStringLoader)


def load_script(path: Path) -> ModuleType:
    name = f"_deploy_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def settings_class(service: str) -> type[BaseSettings] | None:
    """The pydantic-settings class the service's config module defines; None if the module
    does not exist (yet)."""
    module_name = SERVICES[service][0]
    if not module_exists(module_name):
        return None
    module = importlib.import_module(module_name)
    found = [
        cls
        for cls in vars(module).values()
        if inspect.isclass(cls)
        and issubclass(cls, BaseSettings)
        and cls.__module__ == module.__name__
    ]
    assert len(found) == 1, f"{module_name} defines {len(found)} settings classes"
    return found[0]


def env_names(cls: type[BaseSettings]) -> set[str]:
    """Every environment variable the class reads (upper-cased: not case-sensitive)."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field_name, info in cls.model_fields.items():
        alias = info.validation_alias or info.alias
        if isinstance(alias, str):
            names.add(alias.upper())
        elif isinstance(alias, AliasChoices):
            names.update(c.upper() for c in alias.choices if isinstance(c, str))
        elif isinstance(alias, AliasPath):
            names.add(str(alias.path[0]).upper())
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


def required_env(cls: type[BaseSettings]) -> set[str]:
    prefix = str(cls.model_config.get("env_prefix", ""))
    return {f"{prefix}{n}".upper() for n, info in cls.model_fields.items() if info.is_required()}


def reads_otel(cls: type[BaseSettings]) -> bool:
    from zg_shared.settings import ServiceSettings

    return issubclass(cls, ServiceSettings)


# ------------------------------------------------------------------ exported metric names


class _RecordingMeter:
    """Passes instrument creation to a real SDK meter and keeps every instrument, so the test
    can record one value on each (an instrument with no value is not exported)."""

    def __init__(self, meter: Meter) -> None:
        self._meter = meter
        self.instruments: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._meter, name)
        if not name.startswith("create_"):
            return attribute

        def create(*args: Any, **kwargs: Any) -> Any:
            instrument = attribute(*args, **kwargs)
            self.instruments.append(instrument)
            return instrument

        return create


def _record_once(instrument: Any) -> None:
    for method in ("add", "record", "set"):
        if hasattr(instrument, method):
            getattr(instrument, method)(1)
            return


def _metrics_classes(module: ModuleType) -> Iterator[type]:
    for cls in vars(module).values():
        if inspect.isclass(cls) and cls.__module__ == module.__name__:
            params = list(inspect.signature(cls).parameters.values())
            if params and params[0].name == "meter":
                yield cls


def parse_exposition(body: bytes, content_type: str) -> list[PrometheusMetric]:
    """A /metrics body, read by prometheus_client's parser of its format."""
    if content_type.startswith("application/openmetrics-text"):
        # prometheus_client's OpenMetrics parser has no type hints.
        return list(openmetrics_families(body.decode()))  # type: ignore[no-untyped-call]
    return list(text_families(body.decode()))


def sample_names(body: bytes, content_type: str) -> set[str]:
    return {s.name for family in parse_exposition(body, content_type) for s in family.samples}


def exported_metric_names(service: str) -> set[str] | None:
    """The sample names (counter `_total`, histogram `_bucket`/`_sum`/`_count`, unit suffixes
    included) of the service's metrics as its /metrics serves them: its metrics classes
    instantiated on an SDK MeterProvider with the reader zg_shared.telemetry uses,
    one value recorded on each instrument. None if the metrics module does not exist (yet).
    The same names in both formats: OpenMetrics (what Prometheus asks for) and plain text."""
    module_name = SERVICES[service][1]
    if module_name is None or not module_exists(module_name):
        return None
    module = importlib.import_module(module_name)
    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[ExemplarMetricReader(registry)])
    try:
        for cls in _metrics_classes(module):
            meter = _RecordingMeter(provider.get_meter(f"test-{service}"))
            params = list(inspect.signature(cls).parameters.values())[1:]
            extra = [
                "test" for p in params if p.default is inspect.Parameter.empty
            ]  # e.g. the prover's backend label
            cls(meter, *extra)
            for instrument in meter.instruments:
                _record_once(instrument)
        plain = sample_names(*exposition(registry, "text/plain"))
        openmetrics = sample_names(*exposition(registry, OPENMETRICS))
    finally:
        provider.shutdown()
    assert plain == openmetrics, plain ^ openmetrics
    return plain


# ------------------------------------------------------------------ PromQL

# Grafana's variables, as Prometheus would see them after Grafana substituted them.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def as_prometheus_sees_it(expr: str) -> str:
    """A panel's query with Grafana's variables substituted."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects, from its syntax tree (promql-parser, the
    Rust parser's Python binding): raises ValueError if the expression does not parse."""
    expr = as_prometheus_sees_it(expr)
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name is None:
                raise ValueError(f"a selector without a metric name in {expr!r}")
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), pre_visit=visit)
    return names


def dashboard_exprs(path: Path) -> Iterator[tuple[str, str]]:
    for panel in json.loads(path.read_text())["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def alert_exprs() -> Iterator[tuple[str, str]]:
    for group in load_yaml(ALERTS)["groups"]:
        for rule in group["rules"]:
            yield rule["alert"], rule["expr"]


def all_exprs() -> Iterator[tuple[str, str]]:
    for path in sorted(DASHBOARDS.glob("*.json")):
        for title, expr in dashboard_exprs(path):
            yield f"{path.name}: {title}", expr
    for name, expr in alert_exprs():
        yield f"alerts.yml: {name}", expr
