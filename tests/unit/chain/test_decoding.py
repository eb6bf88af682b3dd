# SPDX-License-Identifier: Apache-2.0
"""Revert and event decoding against the real Serving ABI, without a node."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode
from eth_utils.abi import event_signature_to_log_topic, function_signature_to_4byte_selector
from pydantic import ValidationError

from zg_shared.chain import FeesSettled, ServiceParams, ServiceUpdated, load_artifact
from zg_shared.chain.errors import RevertDecoder
from zg_shared.chain.events import EventDecoder

ABI = load_artifact("Serving").abi
USER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
PROVIDER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def error_data(signature: str, types: list[str], values: list[object]) -> str:
    return "0x" + (function_signature_to_4byte_selector(signature) + encode(types, values)).hex()


def log(
    signature: str, indexed: list[tuple[str, object]], plain: list[tuple[str, object]]
) -> dict[str, object]:
    topics = [event_signature_to_log_topic(signature)] + [encode([t], [v]) for t, v in indexed]
    return {
        "topics": topics,
        "data": encode([t for t, _ in plain], [v for _, v in plain]),
        "blockNumber": 7,
        "blockHash": b"\x01" * 32,
        "transactionHash": "0x" + "ab" * 32,
        "logIndex": 3,
    }


def test_a_custom_error_decodes_to_its_name_and_named_args() -> None:
    data = error_data(
        "ServingRefundLocked(uint256,uint256)", ["uint256", "uint256"], [2, 1700000000]
    )
    revert = RevertDecoder(ABI).decode(data)
    assert revert.name == "ServingRefundLocked"
    assert revert.args_by_name == {"index": 2, "unlockAt": 1700000000}
    assert "ServingRefundLocked(index=2, unlockAt=1700000000)" in str(revert)


def test_address_args_come_back_checksummed() -> None:
    data = error_data(
        "ServingAccountNotFound(address,address)", ["address", "address"], [USER.lower(), PROVIDER]
    )
    assert RevertDecoder(ABI).decode(data).args_by_name == {"user": USER, "provider": PROVIDER}


def test_require_strings_and_panics_decode_too() -> None:
    decoder = RevertDecoder(ABI)
    assert decoder.decode(error_data("Error(string)", ["string"], ["nope"])).args_by_name == {
        "message": "nope"
    }
    assert decoder.decode(error_data("Panic(uint256)", ["uint256"], [0x11])).name == "Panic"


@pytest.mark.parametrize("data", [None, "0x", "0xdeadbeef00"])
def test_unknown_or_missing_revert_data_is_kept_raw(data: str | None) -> None:
    revert = RevertDecoder(ABI).decode(data)
    assert revert.name == ""
    assert revert.data == (data or "0x")


def test_an_event_log_decodes_into_its_model_with_its_position() -> None:
    raw = log(
        "FeesSettled(address,address,uint256,uint256)",
        [("address", USER), ("address", PROVIDER)],
        [("uint256", 12345), ("uint256", 99)],
    )
    event = EventDecoder(ABI).decode(raw)
    assert isinstance(event, FeesSettled)
    assert (event.user, event.provider, event.amount, event.final_nonce) == (
        USER,
        PROVIDER,
        12345,
        99,
    )
    assert event.position is not None
    assert (event.position.block_number, event.position.log_index) == (7, 3)
    assert event.position.block_hash == "0x" + "01" * 32


def test_a_struct_field_decodes_into_its_model() -> None:
    service = (PROVIDER, "chat", "chatbot", "http://x", "m", "TeeML", 1, 2, USER, 5, "words")
    raw = log(
        "ServiceUpdated(address,(address,string,string,string,string,string,uint256,uint256,"
        "address,uint256,string))",
        [("address", PROVIDER)],
        [
            (
                "(address,string,string,string,string,string,uint256,uint256,address,uint256,string)",
                service,
            )
        ],
    )
    event = EventDecoder(ABI).decode(raw)
    assert isinstance(event, ServiceUpdated)
    s = event.service
    assert (s.name, s.url, s.signer_address, s.updated_at, s.counting_rule) == (
        "chat",
        "http://x",
        USER,
        5,
        "words",
    )


def test_foreign_logs_are_skipped() -> None:
    raw = log(
        "Transfer(address,address,uint256)",
        [("address", USER), ("address", PROVIDER)],
        [("uint256", 1)],
    )
    decoder = EventDecoder(ABI)
    assert decoder.decode(raw) is None
    assert decoder.decode_all([raw]) == []


def test_an_abi_without_our_events_is_refused() -> None:
    with pytest.raises(ValueError, match="lacks events"):
        EventDecoder([e for e in ABI if e.get("name") != "FeesSettled"])


def test_service_params_speak_the_abi_names() -> None:
    params = ServiceParams(
        name="n", url="u", input_price=1, output_price=2, signer_address=USER.lower()
    )
    assert params.signer_address == USER
    assert set(params.to_abi()) == {
        "name",
        "serviceType",
        "url",
        "model",
        "verifiability",
        "inputPrice",
        "outputPrice",
        "signerAddress",
        "countingRule",
    }
    assert params.counting_rule == "words"


def test_amounts_are_never_negative_and_addresses_are_checked() -> None:
    with pytest.raises(ValidationError):
        ServiceParams(name="n", url="u", input_price=-1, output_price=2, signer_address=USER)
    with pytest.raises(ValidationError, match="not an Ethereum address"):
        ServiceParams(name="n", url="u", input_price=1, output_price=2, signer_address="0x1234")
