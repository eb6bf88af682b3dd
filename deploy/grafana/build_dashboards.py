# SPDX-License-Identifier: Apache-2.0
"""Writes the Grafana dashboards in deploy/grafana/dashboards/ (the JSON files are committed).

    .venv/bin/python deploy/grafana/build_dashboards.py          # rewrite the JSON files
    .venv/bin/python deploy/grafana/build_dashboards.py --check  # exit 1 if they differ

Each panel's PromQL names only metrics the services export (tests/unit/deploy checks the names
against the services' real Prometheus exposition). Edit here, not in the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
PROMETHEUS = {"type": "prometheus", "uid": "prometheus"}
RATE = "$__rate_interval"


def _status_ratio(status: str) -> str:
    """Responses of a status class over all: `or vector(0)`, because a class nobody got yet
    has no series, and the ratio would be empty instead of 0."""
    return (
        f'(sum(rate(zg_gateway_requests_total{{status=~"{status}"}}[{RATE}])) or vector(0)) '
        f"/ sum(rate(zg_gateway_requests_total[{RATE}]))"
    )


@dataclass
class Panel:
    title: str
    queries: list[tuple[str, str]]  # (PromQL, legend)
    unit: str = "short"
    kind: str = "timeseries"  # or "stat"
    description: str = ""
    stack: bool = False
    width: int = 12


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    panels: list[Panel] = field(default_factory=list)


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    height = 4 if panel.kind == "stat" else 8
    custom: dict[str, Any] = {}
    if panel.kind == "timeseries":
        custom = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 20 if panel.stack else 0,
            "stacking": {"mode": "normal" if panel.stack else "none", "group": "A"},
            "showPoints": "never",
        }
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": PROMETHEUS,
        "gridPos": {"h": height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit, "custom": custom}, "overrides": []},
        "options": (
            {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
            if panel.kind == "stat"
            else {"legend": {"displayMode": "list", "placement": "bottom"}}
        ),
        "targets": [
            {
                "datasource": PROMETHEUS,
                "expr": expr,
                "legendFormat": legend,
                "refId": chr(65 + i),
                # A query over a histogram's buckets shows their exemplars: points that open
                # the trace of the measurement in Tempo (zg_shared.exposition).
                "exemplar": "_bucket[" in expr,
            }
            for i, (expr, legend) in enumerate(panel.queries)
        ],
    }


def dashboard_json(board: Dashboard) -> dict[str, Any]:
    panels, x, y, row_height = [], 0, 0, 0
    for i, panel in enumerate(board.panels, start=1):
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        item = _panel_json(panel, i, x, y)
        panels.append(item)
        x += panel.width
        row_height = max(row_height, item["gridPos"]["h"])
    return {
        "uid": board.uid,
        "title": board.title,
        "description": board.description,
        "tags": ["zgserve"],
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "links": [
            {"type": "dashboards", "tags": ["zgserve"], "asDropdown": True, "title": "zgserve"}
        ],
        "panels": panels,
    }


def quantile(q: float, metric: str, by: str = "") -> str:
    labels = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({labels}) (rate({metric}_bucket[{RATE}])))"


def mean(metric: str, by: str = "") -> str:
    group = f"sum by ({by})" if by else "sum"
    return f"{group} (rate({metric}_sum[{RATE}])) / {group} (rate({metric}_count[{RATE}]))"


GATEWAY = Dashboard(
    "zg-gateway",
    "zgserve / gateway",
    "Requests users send through the gateway, what it adds to their latency, and the fees it "
    "reserves at admission and charges at the end of each request.",
    [
        Panel(
            "Requests per second by status",
            [(f"sum by (status) (rate(zg_gateway_requests_total[{RATE}]))", "{{status}}")],
            unit="reqps",
            stack=True,
        ),
        Panel(
            "Error ratio (5xx)",
            [(_status_ratio("5.."), "5xx"), (_status_ratio("4.."), "4xx")],
            description="Share of responses by status class; 0 (not empty) while there are "
            "requests and none of that class.",
            unit="percentunit",
        ),
        Panel(
            "Requests per second by service and endpoint",
            [
                (
                    f"sum by (service, endpoint) (rate(zg_gateway_requests_total[{RATE}]))",
                    "{{service}} {{endpoint}}",
                )
            ],
            unit="reqps",
        ),
        Panel(
            "Added latency (gateway time, backend excluded)",
            [
                (quantile(0.5, "zg_gateway_added_latency_seconds"), "p50"),
                (quantile(0.99, "zg_gateway_added_latency_seconds"), "p99"),
                (mean("zg_gateway_added_latency_seconds", "service"), "mean {{service}}"),
            ],
            unit="s",
            description="Buckets from 0.25 ms to 5 s (zg_gateway.metrics.LATENCY_BUCKETS_S).",
        ),
        Panel(
            "Reserved vs charged (wei per second)",
            [
                (f"sum(rate(zg_gateway_reserved_wei_total[{RATE}]))", "reserved at admission"),
                (f"sum(rate(zg_gateway_charged_wei_total[{RATE}]))", "charged"),
            ],
            description="Reserved is the output bound held while a request runs; charged is "
            "the signed input fee plus the metered output fee. Charged far below reserved "
            "means max_tokens bounds are loose.",
        ),
        Panel(
            "Voided requests per second",
            [(f"sum by (service) (rate(zg_gateway_voided_total[{RATE}]))", "{{service}}")],
            unit="reqps",
            description="Admitted requests charged nothing (backend failed, client left early).",
        ),
    ],
)

PROVER = Dashboard(
    "zg-prover",
    "zgserve / prover",
    "Groth16 proofs for settlement batches: queue, proof time by backend, failures.",
    [
        Panel(
            "Queue depth (JetStream consumer)",
            [
                ("max(zg_prover_queue_pending)", "waiting"),
                ("max(zg_prover_queue_ack_pending)", "delivered, not acked"),
            ],
            description="Settlement requests in the provers' JetStream consumer (PROVER_"
            "DURABLE_NAME), as each prover reads it: the max over replicas.",
        ),
        Panel(
            "Settlements being proven",
            [("sum by (backend) (zg_prover_in_flight)", "{{backend}}")],
            description="Settlement requests the provers have taken and not yet answered.",
        ),
        Panel(
            "Proof time by backend",
            [
                (quantile(0.5, "zg_prover_settlement_seconds", "backend"), "p50 {{backend}}"),
                (quantile(0.99, "zg_prover_settlement_seconds", "backend"), "p99 {{backend}}"),
                (mean("zg_prover_settlement_seconds", "backend"), "mean {{backend}}"),
            ],
            unit="s",
        ),
        Panel(
            "Chunk proofs per second",
            [(f"sum by (backend) (rate(zg_prover_proofs_total[{RATE}]))", "{{backend}}")],
            unit="ops",
        ),
        Panel(
            "Unprovable settlements (per hour)",
            [("sum by (backend) (increase(zg_prover_failures_total[1h]))", "{{backend}}")],
            description="Batches no proof exists for (bad signature, nonce order): billing "
            "drops or splits them; a steady rate means a gateway or billing bug.",
        ),
    ],
)

INDEXER = Dashboard(
    "zg-chain-indexer",
    "zgserve / chain indexer",
    "Contract events into JetStream and Redis: how far behind the chain head, reorgs, errors.",
    [
        Panel(
            "Head lag (blocks)",
            [("max(zg_indexer_head_lag_blocks)", "lag")],
            kind="stat",
            width=6,
        ),
        Panel(
            "Last indexed block",
            [("max(zg_indexer_last_indexed_block)", "block")],
            kind="stat",
            width=6,
        ),
        Panel(
            "Reorgs (last 24 h)",
            [("sum(increase(zg_indexer_reorgs_total[24h]))", "reorgs")],
            kind="stat",
            width=6,
        ),
        Panel(
            "Redis view rebuilds (last 24 h)",
            [("sum(increase(zg_indexer_backfills_total[24h]))", "backfills")],
            kind="stat",
            width=6,
        ),
        Panel(
            "Head lag over time",
            [("max(zg_indexer_head_lag_blocks)", "lag")],
        ),
        Panel(
            "Events published per second by type",
            [
                (
                    f"sum by (type) (rate(zg_indexer_events_published_total[{RATE}]))",
                    "{{type}}",
                )
            ],
            unit="ops",
            stack=True,
        ),
        Panel(
            "Reorgs and duplicate publishes",
            [
                (f"sum(increase(zg_indexer_reorgs_total[{RATE}]))", "reorgs"),
                (
                    f"sum(increase(zg_indexer_duplicate_publishes_total[{RATE}]))",
                    "duplicate publishes",
                ),
            ],
        ),
        Panel(
            "Poll errors per second by kind",
            [(f"sum by (kind) (rate(zg_indexer_rpc_errors_total[{RATE}]))", "{{kind}}")],
            unit="ops",
        ),
    ],
)

BILLING = Dashboard(
    "zg-billing",
    "zgserve / billing",
    "Fees served but not yet settled on chain, how long settlement takes, batch sizes, gas "
    "per settled request and retries.",
    [
        Panel(
            "Unsettled fee (wei)",
            [("sum(zg_billing_unsettled_fee_wei)", "unsettled")],
            description="Fees of served requests not yet settled on chain: the provider's "
            "exposure if users refund before settlement.",
        ),
        Panel(
            "Settlement lag (served to settled)",
            [
                (quantile(0.5, "zg_billing_settlement_lag_seconds"), "p50"),
                (quantile(0.99, "zg_billing_settlement_lag_seconds"), "p99"),
                (mean("zg_billing_settlement_lag_seconds"), "mean"),
            ],
            unit="s",
            description="Quantiles top out at 10,000 s (the histogram's last default bucket); "
            "the mean does not.",
        ),
        Panel(
            "Requests per settlement transaction",
            [
                (quantile(0.5, "zg_billing_batch_requests"), "p50"),
                (mean("zg_billing_batch_requests"), "mean"),
            ],
        ),
        Panel(
            "Gas per settled request",
            [
                (quantile(0.5, "zg_billing_gas_per_request"), "p50"),
                (mean("zg_billing_gas_per_request"), "mean"),
            ],
            description="Buckets from 1,000 to 500,000 gas (zg_billing.metrics.GAS_BUCKETS); "
            "the goal at the production circuit size is under 2,000.",
        ),
        Panel(
            "Unsettled requests",
            [("sum(zg_billing_unsettled_requests)", "requests")],
        ),
        Panel(
            "Settlements by outcome (per hour)",
            [
                (
                    "sum by (outcome) (increase(zg_billing_settlements_total[1h]))",
                    "{{outcome}}",
                )
            ],
            description="requested, submitted, confirmed, failed.",
        ),
        Panel(
            "Settlement retries per hour by reason",
            [("sum by (reason) (increase(zg_billing_retries_total[1h]))", "{{reason}}")],
        ),
        Panel(
            "Requests written off (per hour)",
            [("sum(increase(zg_billing_written_off_requests_total[1h]))", "written off")],
            description="Requests that can never be settled (reported in settlement.failed): "
            "revenue lost.",
        ),
        Panel(
            "Served requests taken into the book",
            [
                (
                    f"sum by (outcome) (rate(zg_billing_requests_recorded_total[{RATE}]))",
                    "{{outcome}}",
                )
            ],
            unit="reqps",
        ),
    ],
)

DASHBOARDS = {"gateway": GATEWAY, "billing": BILLING, "prover": PROVER, "chain-indexer": INDEXER}


def render(board: Dashboard) -> str:
    return json.dumps(dashboard_json(board), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a file differs")
    args = parser.parse_args(argv)
    stale = []
    for name, board in DASHBOARDS.items():
        path = OUT / f"{name}.json"
        text = render(board)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for path in stale:
        print(f"stale: {path} (run deploy/grafana/build_dashboards.py)", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
