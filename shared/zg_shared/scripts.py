# SPDX-License-Identifier: Apache-2.0
"""The repository's Python scripts (scripts/, bench/: folders, not packages) as modules, for
the scripts, benches and tests that use one another's functions."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def script_module(path: Path, name: str | None = None) -> ModuleType:
    """The module of the Python file at `path`, loaded once per process and registered in
    `sys.modules` as `name` (the file's stem by default): its dataclasses look their module
    up there by name."""
    name = name or path.stem
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]  # not half a module for the next caller
        raise
    return module
