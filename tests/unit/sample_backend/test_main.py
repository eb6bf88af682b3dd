# SPDX-License-Identifier: Apache-2.0
"""`python -m zg_sample_backend` as a real process."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import aiohttp

from zg_sample_backend.__main__ import parse_args

IMPORT_ROOT = Path(__file__).resolve().parents[3] / "services" / "sample-backend"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_flags_are_optional() -> None:
    args = parse_args(["--port", "9000"])
    assert (args.port, args.host, args.model) == (9000, None, None)


async def test_help_exits_cleanly() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "zg_sample_backend",
        "--help",
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(IMPORT_ROOT)},
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    assert b"--port" in out
    assert b"--host" in out


async def test_the_process_serves_until_terminated() -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(IMPORT_ROOT), "SAMPLE_BACKEND_MODEL": "from-env"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "zg_sample_backend",
        "--port",
        str(port),
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
    )
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
            for _ in range(100):
                try:
                    async with session.get("/v1/models") as resp:
                        models = await resp.json()
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("the backend never answered")
        assert models["data"][0]["id"] == "from-env"
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) is not None
