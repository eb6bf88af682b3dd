# SPDX-License-Identifier: Apache-2.0
"""EdDSA-Poseidon: exact agreement with circomlibjs, both routes, and every rejection rule."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zg_shared.crypto import _fast, backend, eddsa, eddsa_pure
from zg_shared.crypto import babyjubjub as bj
from zg_shared.crypto.field import P
from zg_shared.crypto.keys import PublicKey, Signature

if TYPE_CHECKING:
    from tests.unit.crypto.conftest import Vectors, VerifyCase

PRV = bytes(range(32))
MSG = 123456789


@pytest.fixture(params=["c", "python"])
def route(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Runs a test through the public API once per route."""
    if request.param == "python":
        monkeypatch.setattr(backend, "fast", None)
    eddsa.clear_key_cache()
    yield str(request.param)
    eddsa.clear_key_cache()


def test_routes_are_distinct(route: str) -> None:
    assert backend.implementation() == route


def test_public_api_matches_circomlibjs(circomlib: Vectors, route: str) -> None:
    vectors = circomlib.sign if route == "c" else circomlib.sign[:12]  # pure is slow
    for v in vectors:
        pub = eddsa.prv2pub(v.prv)
        assert pub.as_tuple() == v.a
        sig = eddsa.sign_poseidon(v.prv, v.msg)
        assert (sig.r8x, sig.r8y, sig.s) == (*v.r8, v.s)
        assert eddsa.verify_poseidon(v.msg, sig, pub)


def test_pure_oracle_matches_circomlibjs(circomlib: Vectors) -> None:
    for v in circomlib.sign[:25]:
        assert eddsa_pure.prv2pub(v.prv) == v.a
        assert eddsa_pure.sign(v.prv, v.msg) == (*v.r8, v.s)
        assert eddsa_pure.verify(v.msg, *v.r8, v.s, *v.a)


def test_fast_verify_accepts_all_vectors(circomlib: Vectors) -> None:
    backend.ensure_poseidon_loaded(5)
    for v in circomlib.sign:
        key = _fast.KeyTable(*v.a)
        assert _fast.verify(v.msg, *v.r8, v.s, key)
        assert not _fast.verify((v.msg + 1) % P, *v.r8, v.s, key)


def _valid() -> tuple[Signature, PublicKey]:
    return eddsa.sign_poseidon(PRV, MSG), eddsa.prv2pub(PRV)


def _off_curve(point: tuple[int, int]) -> tuple[int, int]:
    return point[0], (point[1] + 1) % P


def _small_order_point() -> tuple[int, int]:
    # (0, -1) has order 2: on the curve, and 8 * it is the identity.
    return 0, P - 1


def _rejection_cases() -> dict[str, tuple[int, Signature, PublicKey]]:
    sig, pub = _valid()
    other = eddsa.prv2pub(bytes(32))
    r8_off = _off_curve((sig.r8x, sig.r8y))
    a_off = _off_curve(pub.as_tuple())
    return {
        "tampered R8x": (MSG, Signature(sig.r8x ^ 1, sig.r8y, sig.s), pub),
        "tampered R8y": (MSG, Signature(sig.r8x, sig.r8y ^ 1, sig.s), pub),
        "tampered S": (MSG, Signature(sig.r8x, sig.r8y, sig.s ^ 1), pub),
        # S + l satisfies the equation (l * Base8 is the identity) but is refused.
        "S plus order": (MSG, Signature(sig.r8x, sig.r8y, sig.s + bj.SUBORDER), pub),
        "S equal order": (MSG, Signature(sig.r8x, sig.r8y, bj.SUBORDER), pub),
        "wrong key": (MSG, sig, other),
        "wrong message": (MSG + 1, sig, pub),
        "R8 off curve": (MSG, Signature(*r8_off, sig.s), pub),
        "A off curve": (MSG, sig, PublicKey(*a_off)),
        "R8x not canonical": (MSG, Signature(sig.r8x + P, sig.r8y, sig.s), pub),
        "A x not canonical": (MSG, sig, PublicKey(pub.x + P, pub.y)),
        "identity key": (MSG, sig, PublicKey(0, 1)),
    }


@pytest.mark.parametrize("case", sorted(_rejection_cases()))
def test_rejections(case: str, route: str) -> None:
    msg, sig, pub = _rejection_cases()[case]
    assert not eddsa.verify_poseidon(msg, sig, pub)


def test_rejections_agree_with_circomlibjs(
    js_verify: Callable[[list[VerifyCase]], list[bool]],
) -> None:
    cases = _rejection_cases()
    # circomlibjs reduces non-canonical inputs and has no small-order-key rule; the
    # other cases it must also reject.
    ours_only = {"R8x not canonical", "A x not canonical", "identity key"}
    names = [n for n in sorted(cases) if n not in ours_only]
    sig, pub = _valid()
    requests: list[VerifyCase] = [(MSG, (sig.r8x, sig.r8y), sig.s, pub.as_tuple())]
    for name in names:
        msg, s, a = cases[name]
        requests.append((msg, (s.r8x, s.r8y), s.s, a.as_tuple()))
    assert js_verify(requests) == [True] + [False] * len(names)


def test_small_order_key_forgery_is_refused(
    js_verify: Callable[[list[VerifyCase]], list[bool]],
) -> None:
    """With a small-order A, S = r and R8 = r * Base8 "verify" for any message in
    circomlibjs; circomlib's circuit (and we) refuse such keys."""
    r = 12345
    r8 = bj.mul(bj.BASE8, r)
    forged = Signature(*r8, r)
    weak = PublicKey(*_small_order_point())
    assert js_verify([(MSG, r8, r, weak.as_tuple())]) == [True]
    assert not eddsa.verify_poseidon(MSG, forged, weak)
    assert not eddsa_pure.verify(MSG, *r8, r, *weak.as_tuple())
    with pytest.raises(ValueError, match="small order"):
        _fast.KeyTable(*weak.as_tuple())


def test_msg_must_be_field_element(route: str) -> None:
    sig, pub = _valid()
    for bad in (P, -1):
        with pytest.raises(ValueError, match="field element"):
            eddsa.verify_poseidon(bad, sig, pub)
        with pytest.raises(ValueError, match="field element"):
            eddsa.sign_poseidon(PRV, bad)


def test_private_key_must_be_32_bytes(route: str) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        eddsa.sign_poseidon(bytes(31), MSG)
    with pytest.raises(TypeError):
        eddsa.prv2pub("00" * 32)  # type: ignore[arg-type]


def test_generated_keys_sign_and_verify() -> None:
    prv = eddsa.generate_private_key()
    assert len(prv) == 32
    assert prv != eddsa.generate_private_key()
    sig = eddsa.sign_poseidon(prv, MSG)
    assert eddsa.verify_poseidon(MSG, sig, eddsa.prv2pub(prv))


def test_signature_wire_format() -> None:
    sig, pub = _valid()
    raw = sig.to_bytes()
    assert len(raw) == 96
    assert raw[:32] == sig.r8x.to_bytes(32, "big")
    assert raw[64:] == sig.s.to_bytes(32, "big")
    assert Signature.from_bytes(raw) == sig
    assert Signature.from_hex(sig.to_hex()) == sig
    assert Signature.from_hex(sig.to_hex().upper().replace("0X", "0x")) == sig
    assert PublicKey.from_hex(pub.to_hex()) == pub
    assert len(pub.to_bytes()) == 64
    assert PublicKey.unpack(pub.pack()) == pub


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0x",
        "0x" + "00" * 95,
        "0x" + "00" * 97,
        "00" * 96,
        "0x" + "zz" * 96,
        "0x" + "0" * 191,
        " 0x" + "00" * 96,
        "0x" + "00" * 96 + "\n",
    ],
)
def test_malformed_signature_hex(text: str) -> None:
    with pytest.raises(ValueError, match="signature"):
        Signature.from_hex(text)


def test_malformed_public_key_hex() -> None:
    with pytest.raises(ValueError, match="public key"):
        PublicKey.from_hex("0x" + "00" * 63)
    with pytest.raises(TypeError):
        Signature.from_hex(b"0x00")  # type: ignore[arg-type]


def test_signature_words_are_range_checked() -> None:
    with pytest.raises(ValueError, match="32 unsigned bytes"):
        Signature(1 << 256, 0, 0)
    with pytest.raises(ValueError, match="32 unsigned bytes"):
        Signature(-1, 0, 0)
    with pytest.raises(TypeError):
        PublicKey(True, 1)


def test_key_cache_is_reused() -> None:
    eddsa.clear_key_cache()
    sig, pub = _valid()
    for _ in range(3):
        assert eddsa.verify_poseidon(MSG, sig, pub)
    info = eddsa._key_table.cache_info()
    assert (info.hits, info.misses) == (2, 1)


@settings(max_examples=30, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.integers(min_value=0, max_value=P - 1))
def test_fast_sign_equals_pure(prv: bytes, msg: int) -> None:
    sig = eddsa.sign_poseidon(prv, msg)
    assert (sig.r8x, sig.r8y, sig.s) == eddsa_pure.sign(prv, msg)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(min_value=0, max_value=P - 1),
    st.integers(min_value=0, max_value=(1 << 256) - 1),
    st.sampled_from(["r8x", "r8y", "s"]),
)
def test_random_tampering_is_rejected_by_both_routes(msg: int, noise: int, field: str) -> None:
    sig, pub = _valid()
    values = {"r8x": sig.r8x, "r8y": sig.r8y, "s": sig.s}
    values[field] = noise
    if values[field] == getattr(sig, field):
        return
    forged = Signature(**values)
    key = _fast.KeyTable(*pub.as_tuple())
    backend.ensure_poseidon_loaded(5)
    fast_ok = _fast.verify(MSG, forged.r8x, forged.r8y, forged.s, key)
    assert fast_ok is False
    assert fast_ok == eddsa_pure.verify(MSG, forged.r8x, forged.r8y, forged.s, *pub.as_tuple())


@pytest.fixture(params=[True, False], ids=["adx", "portable"])
def multiplier(request: pytest.FixtureRequest) -> Iterator[bool]:
    """Runs a test with the BMI2/ADX assembly multiplication and with the portable C."""
    before = _fast.use_asm()
    if request.param and not before:
        pytest.skip("this CPU or build has no BMI2/ADX multiplication")
    _fast.use_asm(request.param)
    yield bool(request.param)
    _fast.use_asm(before)


def test_both_multipliers_match_circomlibjs(circomlib: Vectors, multiplier: bool) -> None:
    backend.ensure_poseidon_loaded(4)
    backend.ensure_poseidon_loaded(5)
    for v in circomlib.sign[:60]:
        assert _fast.base8_mul(eddsa_pure.expand_private_key(v.prv)[0] >> 3) == v.a
        key = _fast.KeyTable(*v.a)
        assert _fast.verify(v.msg, *v.r8, v.s, key)
        assert not _fast.verify(v.msg, v.r8[0], v.r8[1], (v.s + 1) % bj.SUBORDER, key)
    for inputs, expected in circomlib.poseidon:
        backend.ensure_poseidon_loaded(len(inputs))
        assert _fast.poseidon(inputs) == expected
