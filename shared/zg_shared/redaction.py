# SPDX-License-Identifier: Apache-2.0
"""Credentials out of text that reaches people: readiness answers and log lines. An RPC URL may
carry an API key in its user part, path or query (`https://host/v3/KEY`), and an exception's
text repeats the URL it failed on."""

from __future__ import annotations

import re

# A URL's address may hold credentials (user:password@, an API key in the path or query).
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>()]+", re.IGNORECASE)
_SECRET = re.compile(
    r"\b(api[_-]?key|apikey|token|access[_-]?token|password|passwd|secret|auth)=[^&\s'\"()]+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """`text` with every URL reduced to its scheme and every `key=value` credential hidden:
    readiness and error text reach people and logs that must not learn an RPC's API key."""
    text = _URL.sub(lambda m: m.group(0).split("://", 1)[0] + "://[redacted]", text)
    return _SECRET.sub(lambda m: m.group(1) + "=[redacted]", text)


def redact_log(text: str) -> str:
    """`text` with every URL cut to its scheme, host and port, and every `key=value` credential
    hidden: a log keeps which endpoint failed, never the key in its user part, path or query."""
    text = _URL.sub(_origin, text)
    return _SECRET.sub(lambda m: m.group(1) + "=[redacted]", text)


def _origin(match: re.Match[str]) -> str:
    scheme, rest = match.group(0).split("://", 1)
    host = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    tail = "" if rest == host else "/[redacted]"
    return f"{scheme}://{host}{tail}"
