# SPDX-License-Identifier: Apache-2.0
"""What `zg` prints without a terminal: lines are never wrapped (a line meant to be copied,
such as `export ZG_PRIVATE_KEY=...`, pastes as it was printed), and errors are described with
their cause."""

from __future__ import annotations

import io
from pathlib import Path

from zgserve.cli._common import Context, describe, make_console
from zgserve.cli._network import show

KEY = "0x" + "ab" * 32


def _context(out: io.StringIO) -> Context:
    return Context(
        rpc_url=None,
        contract=None,
        deployment=None,
        home=None,
        as_json=False,
        err=make_console(io.StringIO()),
        out=make_console(out),
    )


def test_a_long_line_is_not_wrapped_without_a_terminal() -> None:
    out = io.StringIO()
    line = f"export ZG_PRIVATE_KEY={KEY} ZG_PROVIDER=0x{'cd' * 20} ZG_SERVICE=demo-chat"
    assert len(line) > 80
    make_console(out).print(line)
    assert out.getvalue() == line + "\n"


def test_the_network_status_copy_line_stays_whole() -> None:
    out = io.StringIO()
    state = {
        "directory": str(Path("/var/zg") / ("deep/" * 10)),
        "rpc_url": "http://127.0.0.1:8545",
        "contract": "0x" + "12" * 20,
        "gateway_url": "http://127.0.0.1:3080",
        "provider": "0x" + "34" * 20,
        "services": ["demo-chat"],
        "demo_user_key": KEY,
    }
    report = {"gateway": {"pid": 1, "healthy": True, "alive": True, "log": "/var/zg/" * 12}}
    show(_context(out), state, report)
    assert f"export ZG_PRIVATE_KEY={KEY}  (a public dev key)\n" in out.getvalue()


def test_an_error_is_described_by_its_message_and_its_deepest_cause() -> None:
    outer = RuntimeError("Connection error.")
    outer.__cause__ = ConnectionRefusedError(111, "Connection refused")
    assert describe(outer) == "Connection error. ([Errno 111] Connection refused)"
    assert describe(TimeoutError()) == "timed out"
    assert describe(ValueError()) == "ValueError"
