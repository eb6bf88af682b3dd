# SPDX-License-Identifier: Apache-2.0
"""Seeded random malformed requests for the gateway: each has at least one defect that must get
it refused (a payment header missing, duplicated or malformed, a forged signature, a body too
deep, too big, not JSON or wrongly typed, a non-JSON content type, an unknown service or
endpoint, a wrong method), plus harmless noise (header names in any case, extra headers).
Signatures are real where the defect lies elsewhere, so the checks behind the signature run."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.integration.gateway.conftest import User, chat
from zg_shared.crypto import generate_private_key, sign_request

PAYMENT = ("Address", "Nonce", "Input-Fee", "Previous-Output-Fee", "Fee", "Signature")
NUMBERS = ("Nonce", "Input-Fee", "Previous-Output-Fee", "Fee")
PATHS = ("chat/completions", "completions", "embeddings", "settle")


@dataclass
class Hostile:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    defect: str


def _hostile_number(rng: random.Random) -> str:
    return rng.choice(
        [
            "9" * rng.choice([40, 41, 100, 4300, 5000]),
            "-" + str(rng.randrange(1, 10**6)),
            hex(rng.randrange(1, 10**9)),
            "0x" + "f" * 64,
            "١٢٣",  # Arabic-Indic digits: isdigit() says yes
            "²",
            "1e18",
            "3.5",
            " ",
            "",
            "+5",
            "1_000",
            str(2**128),
            str(2**64),
            "NaN",
            "\t7\t",
        ]
    )


def _deep(rng: random.Random) -> bytes:
    depth = rng.choice([65, 1_000, 100_000, 300_000])
    opener, closer = rng.choice([(b"[", b"]"), (b'{"a":', b"}"), (b'[{"x":', b"}]")])
    closed = rng.random() < 0.5
    return opener * depth + (b"1" + closer * depth if closed else b"")


def _wrong_field(rng: random.Random) -> dict[str, Any]:
    field, value = rng.choice(
        [
            ("stream", rng.choice(["yes", 1, 0, [], {}, "true"])),
            ("stream_options", rng.choice(["x", 5, [1], True])),
            ("max_tokens", rng.choice(["10", True, 0, -1, 1.5, 10**40, []])),
            ("max_completion_tokens", rng.choice(["7", False, -3, 2.0])),
            ("model", rng.choice([5, [], {}, True, "another-model"])),
            ("messages", rng.choice(["hi", [], [1], [{"content": 7}], {}, None])),
        ]
    )
    return {**chat("fuzzed words here"), field: value}


def _bad_body(rng: random.Random) -> tuple[bytes, str]:
    kind = rng.randrange(8)
    if kind == 0:
        return _deep(rng), "deep body"
    if kind == 1:
        return b"{" + b'"a":1,' * rng.choice([200_000, 400_000]) + b'"b":2}', "huge body"
    if kind == 2:
        text = rng.choice([b"{not json", b"", b"\xff\xfe\x00", b'{"messages": [', b"null", b"[]"])
        return text, "invalid body"
    if kind == 3:
        return json.dumps(rng.choice([1, "s", [chat("x")], None, True])).encode(), "not an object"
    if kind == 4:
        return json.dumps({"messages": [{"content": "é" * 10}], "n": 1e308}).encode() + b"x", (
            "trailing bytes"
        )
    if kind == 5:
        return b'{"a": NaN, "messages": []}', "constant"
    return json.dumps(_wrong_field(rng)).encode(), "wrongly typed field"


class HostileRequests:
    """Generates the requests for one provider, its service and its users."""

    def __init__(self, seed: int, provider: str, users: list[User], service: str) -> None:
        self.rng = random.Random(seed)
        self.provider = provider
        self.users = users
        self.service = service
        self.nonce = 10**9  # far above any nonce the tests use

    def _signed(self, user: User, input_fee: int, previous: int = 0) -> dict[str, str]:
        self.nonce += 1
        return user.headers(self.provider, input_fee, previous, nonce=self.nonce)

    def _noise(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        rng = self.rng
        case: Callable[[str], str] = rng.choice([str.lower, str.upper, str.title, lambda s: s])
        noisy = [(case(k) if k in PAYMENT else k, v) for k, v in headers]
        if rng.random() < 0.3:
            noisy.append((rng.choice(["X-Junk", "Accept", "X-Forwarded-For"]), "\x7f" * 3))
        rng.shuffle(noisy)
        return noisy

    def __call__(self) -> Hostile:
        rng = self.rng
        user = rng.choice(self.users)
        path = f"/v1/proxy/{self.service}/{rng.choice(PATHS[:3])}"
        headers = self._signed(user, rng.randrange(0, 10**6))
        body = json.dumps(chat("a few words")).encode()
        content_type = "application/json"
        method = "POST"
        kind = rng.randrange(10)
        if kind == 0:
            name = rng.choice(PAYMENT)
            del headers[name]
            defect = f"missing {name}"
        elif kind == 1:
            name = rng.choice(PAYMENT)
            pairs = [*headers.items(), (rng.choice([name, name.lower()]), headers[name])]
            return Hostile(
                method, path, self._noise([*pairs, ("Content-Type", content_type)]), body,
                f"duplicated {name}",
            )  # fmt: skip
        elif kind == 2:
            name = rng.choice(NUMBERS)
            headers[name] = _hostile_number(rng)
            defect = f"{name}={headers[name][:20]!r}"
        elif kind == 3:
            headers["Address"] = rng.choice(
                ["0x" + "g" * 40, "0x12", "", "0x" + "0" * 41, "vitalik.eth", "0X" + "A" * 40]
            )
            defect = "bad address"
        elif kind == 4:
            stranger = User(user.key, generate_private_key())
            forged = sign_request(stranger.signing_key, user.address, self.provider, self.nonce, 1)
            headers["Signature"] = rng.choice(
                [forged.to_hex(), "0x" + "00" * 96, "0xzz", "x" * 500]
            )
            defect = "forged signature"
        elif kind == 5:
            body, defect = _bad_body(rng)
            if defect == "huge body" and rng.random() < 0.5:
                headers["Content-Length"] = str(rng.choice([-1, 10**30]))
                defect += ", bad length"
        elif kind == 6:
            content_type = rng.choice(
                ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "",
                 "application/xml", "text/json", "application/jsonx", "*/*"]
            )  # fmt: skip
            defect = f"content type {content_type!r}"
        elif kind == 7:
            path = rng.choice(
                [
                    f"/v1/proxy/no-such-service-{rng.randrange(10**6)}/chat/completions",
                    f"/v1/proxy/{self.service}/images/generations",
                    f"/v1/proxy/{self.service}/chat/completions/../../x",
                    f"/v1/proxy/{'s' * 2000}/chat/completions",
                    "/v1/proxy//chat/completions",
                    f"/v1/proxy/{self.service}/%00",
                    "/v2/anything",
                ]
            )
            defect = "unknown path"
        elif kind == 8:
            method = rng.choice(["GET", "PUT", "DELETE", "PATCH"])
            defect = f"method {method}"
        else:
            # The fee-only request with an input fee, or with debt it does not owe.
            path = f"/v1/proxy/{self.service}/settle"
            headers = self._signed(user, rng.randrange(1, 100), rng.randrange(10**20, 10**21))
            body = rng.choice([b"", b"{}"])
            defect = "settle paying debt not owed"
        pairs = [*headers.items()]
        if content_type:
            pairs.append(("Content-Type", content_type))
        return Hostile(method, path, self._noise(pairs), body, defect)
