# SPDX-License-Identifier: Apache-2.0
"""The alert rules, evaluated by Prometheus's own promtool (Debian's `prometheus` package;
scripts/setup.sh installs it as root): `check rules` and `test rules` against
deploy/prometheus/alerts.test.yml, where every alert has a case that fires it, with all its
labels and annotations checked, and a near miss that does not."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest

from tests.unit.deploy.common import DEPLOY, load_yaml

RULES = DEPLOY / "prometheus" / "alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing: apt-get install prometheus (scripts/setup.sh)"
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=120, check=False
    )


def rules() -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in load_yaml(RULES)["groups"] for r in g["rules"]}


def cases() -> list[tuple[str, list[dict[str, Any]]]]:
    """(alert name, expected alerts) for every alert_rule_test of the test file."""
    return [
        (case["alertname"], case["exp_alerts"])
        for test in load_yaml(RULE_TESTS)["tests"]
        for case in test["alert_rule_test"]
    ]


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


@needs_promtool
def test_every_alert_fires_and_keeps_quiet_as_its_unit_tests_expect() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("alert", sorted(rules()))
def test_every_alert_has_a_firing_case_and_a_near_miss(alert: str) -> None:
    rule = rules()[alert]
    mine = [expected for name, expected in cases() if name == alert]
    assert [] in mine, f"{alert}: no case where it stays quiet"
    firing = [e for expected in mine for e in expected]
    assert firing, f"{alert}: no case that fires it"
    for expected in firing:
        # promtool compares the whole label and annotation sets: name every one the rule sets.
        assert rule["labels"].items() <= expected["exp_labels"].items(), alert
        assert set(expected["exp_annotations"]) == set(rule["annotations"]), alert
