# SPDX-License-Identifier: Apache-2.0
"""docker-compose.yml as the Compose CLI would read it: YAML (anchors and merge keys) plus
`${VAR}`, `${VAR:-default}` and `${VAR-default}` interpolation from a given environment."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tests.unit.deploy.common import REPO, load_yaml

COMPOSE_FILE = REPO / "docker-compose.yml"
_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?-)(?P<default>[^}]*))?\}|\$\$")


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, default = match.group("name"), match.group("op"), match.group("default")
        if op == ":-":
            return env.get(name) or default
        if op == "-":
            return env.get(name, default)
        return env.get(name, "")

    return _VARIABLE.sub(replace, value)


def load_compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    raw = load_yaml(COMPOSE_FILE)
    assert isinstance(raw, dict)
    result = interpolate(raw, env or {})
    assert isinstance(result, dict)
    return result


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}
