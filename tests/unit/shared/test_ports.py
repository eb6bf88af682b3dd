# SPDX-License-Identifier: Apache-2.0
"""A taken port is named with the process that holds it."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from zg_shared.localservers import free_port
from zg_shared.ports import busy_ports, describe_port, port_holder


def test_a_port_nobody_holds_is_free() -> None:
    port = free_port()
    assert describe_port(port) is None
    assert busy_ports({"chain": port}) == []


def test_a_taken_port_names_its_process() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        holder = port_holder(port)
        assert holder is not None
        assert holder.pid == os.getpid()
        # The kernel's name for this process (python, or pytest when run as .venv/bin/pytest).
        assert holder.name == Path("/proc/self/comm").read_text().strip()
        assert describe_port(port) == f"port {port} is in use by pid {os.getpid()} ({holder.name})"
        assert busy_ports({"gateway": port}) == [f"gateway {describe_port(port)}"]
