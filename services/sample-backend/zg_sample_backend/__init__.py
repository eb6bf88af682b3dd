# SPDX-License-Identifier: Apache-2.0
"""A small deterministic OpenAI-compatible server standing in for vLLM, llama.cpp or Ollama in
tests, the demo network and benchmarks. `python -m zg_sample_backend --help` runs it."""

from zg_sample_backend.app import create_app
from zg_sample_backend.config import BackendSettings

__all__ = ["BackendSettings", "create_app"]
