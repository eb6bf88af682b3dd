# SPDX-License-Identifier: Apache-2.0
"""Poseidon: derived constants, and the three implementations against circomlibjs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zg_shared.crypto import _fast, backend, poseidon
from zg_shared.crypto.field import P
from zg_shared.crypto.poseidon_params import MAX_INPUTS, poseidon_params
from zg_shared.crypto.poseidon_pure import poseidon_optimized, poseidon_reference

if TYPE_CHECKING:
    from tests.unit.crypto.conftest import Vectors

field = st.integers(min_value=0, max_value=P - 1)


@pytest.mark.parametrize("t", range(2, MAX_INPUTS + 2))
def test_derived_constants_equal_circomlibjs(t: int, js_poseidon_tables: dict[str, Any]) -> None:
    params = poseidon_params(t)
    assert list(params.round_constants) == [int(c) for c in js_poseidon_tables["C"][t - 2]]
    assert [list(row) for row in params.mds] == [
        [int(v) for v in row] for row in js_poseidon_tables["M"][t - 2]
    ]


def test_known_vector() -> None:
    # circomlib's test vector for Poseidon(2).
    expected = 7853200120776062878684798364095072458815029376092732009249414926327459813530
    assert poseidon_reference([1, 2]) == expected
    assert poseidon([1, 2]) == expected


def test_all_routes_match_circomlibjs(circomlib: Vectors) -> None:
    assert backend.fast is not None, "the C extension should be built in the test environment"
    for inputs, expected in circomlib.poseidon:
        assert poseidon_optimized(inputs) == expected, inputs
        backend.ensure_poseidon_loaded(len(inputs))
        assert _fast.poseidon(inputs) == expected, inputs
        assert poseidon(inputs) == expected
    for inputs, expected in circomlib.poseidon[:40]:
        assert poseidon_reference(inputs) == expected


@pytest.mark.parametrize("bad", [[], list(range(MAX_INPUTS + 1)), [P], [-1], [1, P + 5]])
def test_rejects_bad_inputs(bad: list[int]) -> None:
    with pytest.raises(ValueError, match=r"Poseidon|field element"):
        poseidon(bad)
    with pytest.raises(ValueError, match=r"Poseidon|field element"):
        poseidon_optimized(bad)


def test_rejects_non_int() -> None:
    with pytest.raises(TypeError):
        poseidon(["1"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        poseidon([True])


def test_fast_route_needs_loaded_params() -> None:
    # The C module refuses widths whose constants were not handed to it.
    with pytest.raises((LookupError, ValueError)):
        _fast.poseidon(list(range(17)))


@settings(max_examples=60, deadline=None)
@given(st.lists(field, min_size=1, max_size=6))
def test_fast_equals_pure(inputs: list[int]) -> None:
    assert poseidon(inputs) == poseidon_optimized(inputs)
