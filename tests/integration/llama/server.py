# SPDX-License-Identifier: Apache-2.0
"""llama-cpp-python's OpenAI-compatible server (`python -m llama_cpp.server`) as a process on a
free port, serving the tiny chat model and its mean-pooling copy for embeddings."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.integration.llama.tiny_model import TinyShape
from zg_shared.localservers import free_port

CHAT_MODEL = "zg-tiny-llama"
EMBED_MODEL = "zg-tiny-embed"
CONTEXT = TinyShape().context
READY_TIMEOUT_S = 60.0


@dataclass
class LlamaServer:
    chat_model: Path
    embed_model: Path
    workdir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The OpenAI base URL (what a gateway's backend URL is)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def log(self) -> Path:
        return self.workdir / "llama-server.log"

    def launch(self) -> None:
        """Starts the process; `wait_ready` then waits until it serves."""
        self.port = self.port or free_port()
        one_thread = {"n_threads": 1, "n_threads_batch": 1, "verbose": False}
        config = {
            "host": "127.0.0.1",
            "port": self.port,
            # The server's defaults, as a provider would run it (interrupt_requests is on).
            "models": [
                {
                    "model": str(self.chat_model),
                    "model_alias": CHAT_MODEL,
                    "n_ctx": CONTEXT,
                    **one_thread,
                },
                {
                    "model": str(self.embed_model),
                    "model_alias": EMBED_MODEL,
                    "n_ctx": CONTEXT,
                    "embedding": True,
                    **one_thread,
                },
            ],
        }
        config_file = self.workdir / "llama-server.json"
        config_file.write_text(json.dumps(config))
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "llama_cpp.server", "--config_file", str(config_file)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def wait_ready(self) -> None:
        deadline = asyncio.get_running_loop().time() + READY_TIMEOUT_S
        async with aiohttp.ClientSession() as http:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"llama_cpp.server exited; see {self.log}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with http.get(f"{self.url}/models") as response:
                        if response.status == 200:
                            return
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"llama_cpp.server not ready; see {self.log}")
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
