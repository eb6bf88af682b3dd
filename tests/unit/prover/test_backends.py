# SPDX-License-Identifier: Apache-2.0
"""Which proving backend a setting picks."""

from __future__ import annotations

import pytest

from zg_prover.backends import arkworks_available, select_backend


def test_auto_takes_arkworks_when_groth16py_is_installed() -> None:
    expected = "arkworks-cpu" if arkworks_available() else "snarkjs-cpu"
    assert select_backend("auto", 4).name == expected


@pytest.mark.parametrize(
    ("kind", "name"), [("snarkjs", "snarkjs-cpu"), ("arkworks", "arkworks-cpu")]
)
def test_a_named_backend_is_that_backend(kind: str, name: str) -> None:
    if kind == "arkworks" and not arkworks_available():
        pytest.skip("groth16py is not installed")
    backend = select_backend(kind, 4)
    assert backend.name == name
    assert backend.circuit_size == 4
    assert backend.missing_artifacts() == []


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown prover backend"):
        select_backend("quantum", 4)
