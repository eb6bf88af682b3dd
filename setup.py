# SPDX-License-Identifier: Apache-2.0
"""Declares the C extension only; everything else about the package is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "zg_shared.crypto._fast",
            sources=["shared/zg_shared/crypto/_fast.c"],
            extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            # Without the C compiler the pure-Python route still works (with a warning).
            optional=True,
        )
    ]
)
