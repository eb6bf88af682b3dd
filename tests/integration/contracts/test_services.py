# SPDX-License-Identifier: Apache-2.0
"""The service registry: add, update, remove, enumerate."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount
from pydantic import ValidationError

from zg_shared.chain import (
    ContractRevert,
    ServiceParams,
    ServiceRemoved,
    ServiceUpdated,
    ServingClient,
)


def params(name: str, signer: str, **changes: object) -> ServiceParams:
    base = ServiceParams(
        name=name,
        service_type="chatbot",
        url=f"https://provider.example/{name}",
        model="llama-3-8b",
        verifiability="TeeML",
        input_price=100,
        output_price=300,
        signer_address=signer,
        counting_rule="words",
    )
    return base.model_copy(update=changes)


async def test_a_registered_service_reads_back_whole(
    serving: ServingClient, keys: list[LocalAccount]
) -> None:
    provider = serving.as_sender(keys[1])
    result = await provider.add_or_update_service(params("chat", keys[2].address))

    service = await serving.get_service(keys[1].address, "chat")
    assert service.provider == keys[1].address
    assert (
        service.model_dump(exclude={"provider", "updated_at"})
        == params("chat", keys[2].address).model_dump()
    )
    [event] = result.events_of(ServiceUpdated)
    assert event.provider == keys[1].address
    assert event.service == service
    assert service.updated_at > 0
    assert service.counting_rule == "words"


async def test_updating_replaces_fields_in_place(
    serving: ServingClient, keys: list[LocalAccount]
) -> None:
    provider = serving.as_sender(keys[1])
    first = await provider.add_or_update_service(params("chat", keys[2].address))
    second = await provider.add_or_update_service(
        params("chat", keys[3].address, url="https://new.example", input_price=7, output_price=9)
    )

    service = await serving.get_service(keys[1].address, "chat")
    assert (service.url, service.input_price, service.output_price) == ("https://new.example", 7, 9)
    assert service.signer_address == keys[3].address
    assert await serving.service_count() == 1
    assert (
        second.events_of(ServiceUpdated)[0].service.updated_at
        >= first.events_of(ServiceUpdated)[0].service.updated_at
    )


async def test_the_counting_rule_is_part_of_the_service(
    serving: ServingClient, keys: list[LocalAccount]
) -> None:
    provider = serving.as_sender(keys[1])
    await provider.add_or_update_service(params("chat", keys[2].address))
    result = await provider.add_or_update_service(
        params("chat", keys[2].address, counting_rule="chars")
    )
    # The chain keeps whatever rule the provider declares; clients decide what they support.
    assert (await serving.get_service(keys[1].address, "chat")).counting_rule == "chars"
    assert result.events_of(ServiceUpdated)[0].service.counting_rule == "chars"


async def test_names_are_per_provider(serving: ServingClient, keys: list[LocalAccount]) -> None:
    await serving.as_sender(keys[1]).add_or_update_service(
        params("chat", keys[2].address, input_price=1)
    )
    await serving.as_sender(keys[3]).add_or_update_service(
        params("chat", keys[4].address, input_price=2)
    )
    assert (await serving.get_service(keys[1].address, "chat")).input_price == 1
    assert (await serving.get_service(keys[3].address, "chat")).input_price == 2


async def test_removal_keeps_the_others_enumerable(
    serving: ServingClient, keys: list[LocalAccount]
) -> None:
    provider = serving.as_sender(keys[1])
    for name in ("a", "b", "c", "d"):
        await provider.add_or_update_service(params(name, keys[2].address))

    result = await provider.remove_service("b")

    [event] = result.events_of(ServiceRemoved)
    assert (event.provider, event.name) == (keys[1].address, "b")
    assert sorted(s.name for s in await serving.get_all_services(page=3)) == ["a", "c", "d"]
    # The entry moved into b's slot is still found by its own key.
    assert (await serving.get_service(keys[1].address, "d")).name == "d"
    with pytest.raises(ContractRevert) as err:
        await serving.get_service(keys[1].address, "b")
    assert err.value.name == "ServingServiceNotFound"
    await provider.remove_service("d")
    await provider.remove_service("a")
    await provider.remove_service("c")
    assert await serving.get_all_services() == []


async def test_removing_what_is_not_there_reverts(
    serving: ServingClient, keys: list[LocalAccount]
) -> None:
    await serving.as_sender(keys[1]).add_or_update_service(params("chat", keys[2].address))
    with pytest.raises(ContractRevert) as err:
        await serving.as_sender(keys[3]).remove_service("chat")
    assert err.value.name == "ServingServiceNotFound"
    assert err.value.args_by_name == {"provider": keys[3].address, "name": "chat"}
    assert await serving.service_count() == 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"name": ""}, "empty name"),
        ({"url": ""}, "empty url"),
        ({"signer_address": "0x" + "00" * 20}, "zero signer"),
        ({"counting_rule": ""}, "empty counting rule"),
    ],
)
async def test_incomplete_services_are_refused_on_chain(
    serving: ServingClient, keys: list[LocalAccount], change: dict[str, object], reason: str
) -> None:
    # model_copy skips validation on purpose: this checks the contract, not the model.
    bad = params("chat", keys[2].address).model_copy(update=change)
    with pytest.raises(ContractRevert) as err:
        await serving.as_sender(keys[1]).add_or_update_service(bad)
    assert err.value.name == "ServingInvalidService"
    assert err.value.args_by_name == {"reason": reason}
    assert await serving.service_count() == 0


def test_the_model_refuses_incomplete_services_before_the_chain_does() -> None:
    with pytest.raises(ValidationError):
        ServiceParams(
            name="", url="u", input_price=1, output_price=1, signer_address="0x" + "11" * 20
        )
    with pytest.raises(ValidationError):
        ServiceParams(
            name="n", url="u", input_price=-1, output_price=1, signer_address="0x" + "11" * 20
        )
    with pytest.raises(ValidationError):
        ServiceParams(name="n", url="u", input_price=1, output_price=1, signer_address="0xnope")
