# SPDX-License-Identifier: Apache-2.0
"""SettleBatch(4) witness generation: valid chunks pass, and each constraint broken on purpose
makes circom's witness generator fail at that constraint (so no proof can exist for it). Each
test runs with both generators, node's wasm and circom's native C++ one: same verdicts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.integration.zk.conftest import (
    KEY_A,
    KEY_B,
    PROVIDER,
    ROOT,
    SIZE,
    USER,
    Point,
    sign,
)
from zg_shared.zk import (
    ChunkInput,
    SignedRequest,
    Snarkjs,
    WitnessError,
    build_chunk_input,
)
from zg_shared.zk.keys import find_keys
from zg_shared.zk.witness import NativeWitness, WasmWitness, WitnessGenerator

pytestmark = pytest.mark.slow

CIRCUIT = ROOT / "circuits" / "settle_batch.circom"
Signed = tuple[Point, list[SignedRequest]]


def line_of(snippet: str) -> int:
    """The circuit line holding a constraint, so a test names the constraint, not a number."""
    hits = [i for i, text in enumerate(CIRCUIT.read_text().splitlines(), 1) if snippet in text]
    assert len(hits) == 1, f"{snippet!r} found on lines {hits}"
    return hits[0]


def raw_chunk(
    entries: Sequence[SignedRequest],
    pub: Point,
    *,
    enabled: Sequence[int] | None = None,
    user: int = USER,
    **public: int,
) -> ChunkInput:
    """A chunk in exactly the given order, padded, with public values computed the honest way
    unless overridden: lets a test break one rule at a time, past build_chunk_input's checks."""
    pad = SIZE - len(entries)
    flags = list(enabled) if enabled is not None else [1] * len(entries) + [0] * pad
    on = [e for e, f in zip(entries, flags, strict=False) if f]
    values: dict[str, object] = {
        "user": user,
        "provider": PROVIDER,
        "initNonce": entries[0].nonce,
        "finalNonce": on[-1].nonce if on else 0,
        "totalFee": sum(e.fee for e in on),
        "signerX": pub[0],
        "signerY": pub[1],
        "enabled": flags,
        "nonce": [e.nonce for e in entries] + [0] * pad,
        "fee": [e.fee for e in entries] + [0] * pad,
        "R8x": [e.r8x for e in entries] + [0] * pad,
        "R8y": [e.r8y for e in entries] + [1] * pad,
        "S": [e.s for e in entries] + [0] * pad,
    }
    values.update(public)
    return ChunkInput.model_validate(values)


@pytest.fixture(scope="module", params=["wasm", "native"])
def generator(request: pytest.FixtureRequest, snarkjs: Snarkjs, wasm: Path) -> WitnessGenerator:
    """Every rule is checked by both witness generators: node's wasm and circom's C++ one."""
    build = find_keys(SIZE, root=ROOT, allow_dev=False)
    assert build is not None
    if request.param == "wasm":
        return WasmWitness(wasm, snarkjs)
    if not build.build.native_witness.is_file():
        pytest.skip("no native witness generator (g++/libgmp/nlohmann-json missing)")
    return NativeWitness(build.build.native_witness)


def witness(generator: WitnessGenerator, chunk: ChunkInput, tmp_path: Path) -> Path:
    return generator.calculate(chunk, tmp_path / "witness.wtns")


def rejected(generator: WitnessGenerator, chunk: ChunkInput, tmp_path: Path) -> WitnessError:
    with pytest.raises(WitnessError) as err:
        witness(generator, chunk, tmp_path)
    return err.value


def at_line(err: WitnessError, snippet: str) -> bool:
    return (err.template, err.line) == ("SettleBatch", line_of(snippet))


# ------------------------------------------------------------------ valid chunks


def test_full_chunk_has_a_witness(
    generator: WitnessGenerator, signed: Signed, tmp_path: Path
) -> None:
    pub, reqs = signed
    chunk = build_chunk_input(reqs[:4], pub, SIZE)
    assert witness(generator, chunk, tmp_path).stat().st_size > 0


def test_partial_chunk_with_padding_has_a_witness(
    generator: WitnessGenerator, signed: Signed, tmp_path: Path
) -> None:
    pub, reqs = signed
    for count in (1, 3):
        chunk = build_chunk_input(reqs[:count], pub, SIZE)
        assert chunk.enabled == [1] * count + [0] * (SIZE - count)
        witness(generator, chunk, tmp_path)


def test_gaps_in_nonces_are_fine(
    generator: WitnessGenerator, signed: Signed, tmp_path: Path
) -> None:
    pub, reqs = signed
    witness(generator, build_chunk_input([reqs[0], reqs[3], reqs[5]], pub, SIZE), tmp_path)


def test_padding_counts_for_nothing_whatever_it_holds(
    generator: WitnessGenerator, signed: Signed, tmp_path: Path
) -> None:
    # A disabled entry with a lower nonce, a fee and an unrelated signature: not summed, not
    # ordered, not verified.
    pub, reqs = signed
    junk = reqs[0].model_copy(update={"nonce": 0, "fee": 10**30, "s": 12345})
    chunk = raw_chunk([reqs[1], reqs[2], junk], pub, enabled=[1, 1, 0, 0])
    assert chunk.total_fee == reqs[1].fee + reqs[2].fee
    witness(generator, chunk, tmp_path)


def test_largest_fee_and_nonce_are_accepted(generator: WitnessGenerator, tmp_path: Path) -> None:
    top_nonce, top_fee = (1 << 64) - 1, (1 << 128) - 1
    pub, reqs = sign(
        KEY_A, [(USER, PROVIDER, top_nonce - 1, top_fee), (USER, PROVIDER, top_nonce, top_fee)]
    )
    chunk = build_chunk_input(reqs, pub, SIZE)
    assert chunk.total_fee == 2 * top_fee  # the sum may pass 2^128
    witness(generator, chunk, tmp_path)


# ------------------------------------------------------------------ broken on purpose


def test_bad_signature_is_rejected(
    generator: WitnessGenerator, signed: Signed, tmp_path: Path
) -> None:
    pub, reqs = signed
    forged = reqs[1].model_copy(update={"s": reqs[1].s + 1})
    err = rejected(generator, raw_chunk([reqs[0], forged, reqs[2]], pub), tmp_path)
    assert err.template == "ForceEqualIfEnabled"


def test_signature_over_another_fee_is_rejected(
    generator: WitnessGenerator, signed: Signed, tmp_path: Path
) -> None:
    pub, reqs = signed
    inflated = reqs[1].model_copy(update={"fee": reqs[1].fee + 1})
    err = rejected(generator, raw_chunk([reqs[0], inflated], pub), tmp_path)
    assert err.template == "ForceEqualIfEnabled"


def test_equal_nonces_are_rejected(
    generator: WitnessGenerator, signed: Signed, tmp_path: Path
) -> None:
    pub, reqs = signed
    err = rejected(generator, raw_chunk([reqs[0], reqs[1], reqs[1]], pub), tmp_path)
    assert at_line(err, "enabled[i] * (1 - increasing[i].out) === 0;")


def test_decreasing_nonces_are_rejected(
    generator: WitnessGenerator, signed: Signed, tmp_path: Path
) -> None:
    pub, reqs = signed
    err = rejected(generator, raw_chunk([reqs[0], reqs[2], reqs[1]], pub), tmp_path)
    assert at_line(err, "enabled[i] * (1 - increasing[i].out) === 0;")


@pytest.mark.parametrize("delta", [1, -1])
def test_wrong_total_fee_is_rejected(
    generator: WitnessGenerator, signed: Signed, tmp_path: Path, delta: int
) -> None:
    pub, reqs = signed
    honest = build_chunk_input(reqs[:3], pub, SIZE)
    chunk = honest.model_copy(update={"total_fee": honest.total_fee + delta})
    assert at_line(rejected(generator, chunk, tmp_path), "totalFee === sum;")


def test_total_fee_counting_padding_is_rejected(
    generator: WitnessGenerator, signed: Signed, tmp_path: Path
) -> None:
    # The 4th entry is a real signature but disabled: claiming its fee must fail.
    pub, reqs = signed
    chunk = raw_chunk(reqs[:4], pub, enabled=[1, 1, 1, 0], totalFee=sum(r.fee for r in reqs[:4]))
    assert at_line(rejected(generator, chunk, tmp_path), "totalFee === sum;")


@pytest.mark.parametrize("final_index", [1, 3])
def test_wrong_final_nonce_is_rejected(
    generator: WitnessGenerator, signed: Signed, tmp_path: Path, final_index: int
) -> None:
    # Entries 0..2 enabled: claiming entry 1's nonce, or a disabled entry 3's, must fail.
    pub, reqs = signed
    chunk = raw_chunk(reqs[:4], pub, enabled=[1, 1, 1, 0], finalNonce=reqs[final_index].nonce)
    assert at_line(rejected(generator, chunk, tmp_path), "finalNonce === selected;")


def test_wrong_init_nonce_is_rejected(
    generator: WitnessGenerator, signed: Signed, tmp_path: Path
) -> None:
    pub, reqs = signed
    chunk = raw_chunk(reqs[1:3], pub, initNonce=reqs[0].nonce)
    assert at_line(rejected(generator, chunk, tmp_path), "initNonce === nonce[0];")


def test_signature_by_another_key_is_rejected(
    generator: WitnessGenerator, signed: Signed, tmp_path: Path
) -> None:
    pub_a, reqs_a = signed
    pub_b, reqs_b = sign(KEY_B, [(USER, PROVIDER, 2, 200)])
    # B's signature in a chunk for signer A...
    err = rejected(generator, raw_chunk([reqs_a[0], reqs_b[0]], pub_a), tmp_path)
    assert err.template == "ForceEqualIfEnabled"
    # ...and A's signatures presented as B's.
    err = rejected(generator, raw_chunk(reqs_a[:2], pub_b), tmp_path)
    assert err.template == "ForceEqualIfEnabled"


def test_signature_for_another_user_is_rejected(
    generator: WitnessGenerator, signed: Signed, tmp_path: Path
) -> None:
    # A valid signature by the right key, but over another user's address (or provider's).
    pub, reqs = signed
    other = 0x3333333333333333333333333333333333333333
    _, stolen = sign(KEY_A, [(other, PROVIDER, 2, 200), (USER, other, 3, 300)])
    for entry in stolen:
        err = rejected(generator, raw_chunk([reqs[0], entry], pub), tmp_path)
        assert err.template == "ForceEqualIfEnabled"
    # The chunk's public user must be the one the signatures name.
    err = rejected(generator, raw_chunk(reqs[:2], pub, user=other), tmp_path)
    assert err.template == "ForceEqualIfEnabled"


@pytest.mark.parametrize(
    ("enabled", "snippet"),
    [
        ([1, 0, 1, 0], "enabled[i] * (1 - enabled[i - 1]) === 0;"),
        ([1, 1, 0, 1], "enabled[i] * (1 - enabled[i - 1]) === 0;"),
        ([0, 1, 1, 1], "enabled[0] === 1;"),
        ([0, 0, 0, 0], "enabled[0] === 1;"),
        ([1, 2, 0, 0], "enabled[i] * (enabled[i] - 1) === 0;"),
    ],
)
def test_enabled_must_be_a_non_empty_boolean_prefix(
    generator: WitnessGenerator,
    signed: Signed,
    tmp_path: Path,
    enabled: list[int],
    snippet: str,
) -> None:
    pub, reqs = signed
    honest = raw_chunk(reqs[:4], pub)
    # Bypass ChunkInput's 0/1 validation for the non-boolean case.
    chunk = honest.model_copy(update={"enabled": enabled})
    assert at_line(rejected(generator, chunk, tmp_path), snippet)


def test_fee_of_2_to_the_128_is_rejected(generator: WitnessGenerator, tmp_path: Path) -> None:
    pub, reqs = sign(KEY_A, [(USER, PROVIDER, 1, 1), (USER, PROVIDER, 2, 1 << 128)])
    err = rejected(generator, raw_chunk(reqs, pub), tmp_path)
    assert err.template == "Num2Bits"


def test_nonce_of_2_to_the_64_is_rejected(generator: WitnessGenerator, tmp_path: Path) -> None:
    pub, reqs = sign(KEY_A, [(USER, PROVIDER, 1, 1), (USER, PROVIDER, 1 << 64, 1)])
    # ChunkInput refuses such a finalNonce: bypass its validation to reach the circuit.
    honest = raw_chunk([reqs[0], reqs[1].model_copy(update={"nonce": 2})], pub)
    chunk = honest.model_copy(update={"nonce": [1, 1 << 64, 0, 0], "final_nonce": 1 << 64})
    err = rejected(generator, chunk, tmp_path)
    assert err.template == "Num2Bits"


def test_both_generators_write_the_same_witness(
    snarkjs: Snarkjs, wasm: Path, signed: Signed, tmp_path: Path
) -> None:
    keys = find_keys(SIZE, root=ROOT, allow_dev=False)
    assert keys is not None
    if not keys.build.native_witness.is_file():
        pytest.skip("no native witness generator (g++/libgmp/nlohmann-json missing)")
    pub, reqs = signed
    chunk = build_chunk_input(reqs[:3], pub, SIZE)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    from_node = WasmWitness(wasm, snarkjs).calculate(chunk, tmp_path / "a" / "w.wtns")
    native = NativeWitness(keys.build.native_witness).calculate(chunk, tmp_path / "b" / "w.wtns")
    assert from_node.read_bytes() == native.read_bytes()
