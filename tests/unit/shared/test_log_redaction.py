# SPDX-License-Identifier: Apache-2.0
"""Log lines never carry an RPC's API key (issue 12 item 8): a URL keeps its origin, so the
operator still sees which endpoint failed; its user part, path and query do not reach the log."""

from __future__ import annotations

import io
import json
import logging

import pytest

from zg_shared.redaction import redact_log
from zg_shared.telemetry import setup_logging

KEY = "3f9a0c1d2e4b5a6978"
FAILURES = [
    f"RPC failed: 429 Too Many Requests for url https://mainnet.example.io/v3/{KEY}",
    f"Cannot connect to host https://user:{KEY}@rpc.example.io:8545",
    f"GET https://rpc.example.io/?apikey={KEY}&x=1 refused",
    f"connecting with password={KEY} failed",
]


@pytest.mark.parametrize("text", FAILURES)
def test_a_credential_never_survives_and_the_endpoint_does(text: str) -> None:
    line = redact_log(text)
    assert KEY not in line
    if "://" in text:
        assert "rpc.example.io" in line or "mainnet.example.io" in line


def test_a_bare_origin_is_kept_as_it_is() -> None:
    assert (
        redact_log("gateway http://127.0.0.1:3080 ready") == "gateway http://127.0.0.1:3080 ready"
    )


@pytest.mark.parametrize("as_json", [True, False])
def test_the_services_log_lines_and_tracebacks_are_redacted(as_json: bool) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        setup_logging("INFO", as_json=as_json)
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        try:
            raise ConnectionError(FAILURES[0])
        except ConnectionError:
            logging.getLogger("zg-test").exception("settlement waits: %s", FAILURES[1])
    finally:  # the session's logging as it was (pytest's capture handlers among it)
        root.handlers[:] = handlers
        root.setLevel(level)
    out = stream.getvalue()
    assert KEY not in out
    assert "mainnet.example.io" in out
    assert "rpc.example.io" in out
    if as_json:
        entry = json.loads(out)
        assert "Traceback" in entry["exception"]
