# SPDX-License-Identifier: Apache-2.0
"""`zg` as a user runs it (the installed console script), with --json and exit codes."""

from __future__ import annotations

import json
import re

from eth_account.signers.local import LocalAccount

from tests.conftest import LOCK_TIME
from tests.integration.sdk.conftest import (
    DEPOSIT,
    INPUT_PRICE,
    OUTPUT_PRICE,
    SERVICE,
    Network,
    run_zg,
    zg_env,
)
from zg_shared.accounts import AccountStore
from zg_shared.crypto import prv2pub
from zgserve import Evidence, verify_evidence


async def test_services_lists_the_marketplace_without_a_wallet(deployed: Network) -> None:
    env = zg_env(deployed)
    del env["ZG_PRIVATE_KEY"]
    result = await run_zg("--json", "services", env=env, cwd=deployed.state_dir.parent)
    assert result.code == 0, result.stderr
    [service] = result.json()
    assert (service["name"], service["provider"]) == (SERVICE, deployed.provider)
    assert (service["input_price"], service["output_price"]) == (INPUT_PRICE, OUTPUT_PRICE)

    table = await run_zg("services", env=env, cwd=deployed.state_dir.parent)
    assert table.code == 0
    assert SERVICE in table.stdout


async def test_account_lifecycle_and_exit_codes(deployed: Network) -> None:
    env, cwd = zg_env(deployed), deployed.state_dir.parent
    missing = await run_zg("--json", "account", "show", env=env, cwd=cwd)
    assert missing.code == 4
    assert "no account" in missing.stderr

    no_key = {k: v for k, v in env.items() if k != "ZG_PRIVATE_KEY"}
    assert (await run_zg("account", "show", env=no_key, cwd=cwd)).code == 2
    assert (await run_zg("account", "deposit", "lots", env=env, cwd=cwd)).code == 2

    created = await run_zg(
        "--json", "account", "create", "--deposit", f"{DEPOSIT}", env=env, cwd=cwd
    )
    assert created.code == 0, created.stderr
    assert created.json()["balance"] == DEPOSIT
    assert created.json()["key_in_custody"] is True
    again = await run_zg("--json", "account", "create", env=env, cwd=cwd)
    assert again.code == 5

    deposited = await run_zg("--json", "account", "deposit", "1gwei", env=env, cwd=cwd)
    assert deposited.code == 0, deposited.stderr
    assert deposited.json()["balance"] == DEPOSIT + 10**9

    refund = await run_zg("--json", "account", "refund", "--amount", "1gwei", env=env, cwd=cwd)
    assert refund.code == 0, refund.stderr
    assert refund.json()["pending_refund"] == 10**9
    too_early = await run_zg("--json", "account", "refund", "--process", env=env, cwd=cwd)
    assert too_early.code == 5
    assert "lock time" in too_early.stderr

    shown = await run_zg("account", "show", env=env, cwd=cwd)
    assert shown.code == 0
    assert "pending refund" in shown.stdout


async def test_chat_one_shot_plain_and_streamed_pays_everything_at_exit(network: Network) -> None:
    env, cwd = zg_env(network), network.state_dir.parent
    env["ZG_SERVICE"] = SERVICE  # the gateway's URL comes from the chain
    created = await run_zg("account", "create", "--deposit", str(DEPOSIT), env=env, cwd=cwd)
    assert created.code == 0, created.stderr

    evidence = network.state_dir / "chat-evidence.json"
    options = ("--no-stream", "--evidence", str(evidence))
    plain = await run_zg("--json", "chat", *options, "hello there", env=env, cwd=cwd)
    assert plain.code == 0, plain.stderr
    assert plain.json()["reply"]
    assert all(f.ok for f in verify_evidence(Evidence.read(evidence)))

    streamed = await run_zg("chat", "-", env=env, cwd=cwd, stdin=b"tell me more")
    assert streamed.code == 0, streamed.stderr
    assert streamed.stdout.strip()

    interactive = await run_zg("chat", env=env, cwd=cwd, stdin=b"first question\nsecond one\n")
    assert interactive.code == 0, interactive.stderr
    assert interactive.stdout.count("you>") == 3  # two questions, then end of input

    verified = await run_zg("verify", str(evidence), env=env, cwd=cwd)
    assert verified.code == 0
    on_chain = await run_zg("--json", "verify", "--against-chain", str(evidence), env=env, cwd=cwd)
    assert on_chain.code == 0, on_chain.stdout + on_chain.stderr
    assert (on_chain.json()["chain_problems"], on_chain.json()["chain_notes"]) == ([], [])
    # Evidence claiming another user's key is caught against the chain.
    forged = Evidence.read(evidence).model_copy(update={"user": network.provider})
    forged_path = forged.write(network.state_dir / "forged.json")
    claimed = await run_zg(
        "--json", "verify", "--against-chain", str(forged_path), env=env, cwd=cwd
    )
    assert claimed.code == 3
    # Each run paid its last output fee before exiting: the provider is owed nothing.
    state = await network.state(network.user_key.address)
    assert state is not None
    assert state.output_debt == 0

    down = await run_zg(
        "chat", "--gateway", "http://127.0.0.1:9", "--no-stream", "hi", env=env, cwd=cwd
    )
    assert down.code == 6


async def test_provider_register_update_remove(deployed: Network, keys: list[LocalAccount]) -> None:
    provider = keys[4]
    env, cwd = zg_env(deployed, provider), deployed.state_dir.parent
    registered = await run_zg(
        "--json",
        "provider",
        "register",
        "--name",
        "llama",
        "--url",
        "http://127.0.0.1:8000/v1",
        "--model",
        "llama-3",
        "--input-price",
        "1gwei",
        "--output-price",
        "2gwei",
        "--signer",
        keys[2].address,
        env=env,
        cwd=cwd,
    )
    assert registered.code == 0, registered.stderr
    assert registered.json()["provider"] == provider.address
    assert registered.json()["input_price"] == 10**9

    updated = await run_zg(
        "--json", "provider", "update", "--name", "llama", "--output-price", "3gwei",
        env=env, cwd=cwd,
    )  # fmt: skip
    assert updated.code == 0, updated.stderr
    assert (updated.json()["output_price"], updated.json()["model"]) == (3 * 10**9, "llama-3")

    removed = await run_zg("--json", "provider", "remove", "--name", "llama", env=env, cwd=cwd)
    assert removed.code == 0, removed.stderr
    gone = await run_zg("--json", "provider", "remove", "--name", "llama", env=env, cwd=cwd)
    assert gone.code == 4
    missing_option = await run_zg("provider", "register", "--name", "x", env=env, cwd=cwd)
    assert missing_option.code == 2


async def test_a_malformed_wallet_key_is_one_line_and_exit_2(deployed: Network) -> None:
    cwd = deployed.state_dir.parent
    for key in ("0xdeadbeef", "hello"):
        result = await run_zg(
            "account", "show", env={**zg_env(deployed), "ZG_PRIVATE_KEY": key}, cwd=cwd
        )
        assert result.code == 2
        assert "Traceback" not in result.stderr
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("error: the wallet key (ZG_PRIVATE_KEY) is not a private key")
        assert key.removeprefix("0x") not in line  # never shown, even malformed


async def test_amounts_must_be_positive_and_within_the_wallet(deployed: Network) -> None:
    env, cwd = zg_env(deployed), deployed.state_dir.parent
    created = await run_zg("account", "create", env=env, cwd=cwd)
    assert created.code == 0, created.stderr
    for amount in ("-5", "0", "-0.1eth"):
        refused = await run_zg("account", "deposit", "--", amount, env=env, cwd=cwd)
        assert refused.code == 2
        assert "amounts must be positive" in refused.stderr
    balance = await deployed.serving.w3.eth.get_balance(deployed.user_key.address)
    too_much = await run_zg("--json", "account", "deposit", "1000000eth", env=env, cwd=cwd)
    assert too_much.code == 5, too_much.stderr
    error = json.loads(too_much.stderr)["error"]
    assert f"the wallet {deployed.user_key.address} holds" in error
    assert f"({balance} wei)" in error
    assert "depositing 1000000 0G (1000000000000000000000000 wei) needs" in error


async def test_refunds_show_when_they_unlock(deployed: Network) -> None:
    env, cwd = zg_env(deployed), deployed.state_dir.parent
    assert (await run_zg("account", "create", "--deposit", "2gwei", env=env, cwd=cwd)).code == 0
    assert (await run_zg("account", "refund", "--amount", "1gwei", env=env, cwd=cwd)).code == 0
    soon = r"unlocks at \d{4}-\d\d-\d\d \d\d:\d\d \S+ \(local time\), in (59 min \d+ s|1 h 0 min)"

    shown = await run_zg("account", "show", env=env, cwd=cwd)
    assert shown.code == 0, shown.stderr
    # One row per refund, never wrapped (no terminal): the amount and when, on one line.
    assert re.search(r"│ 0 +│ 1 gwei \(1000000000 wei\) +│ " + soon, shown.stdout), shown.stdout
    as_json = (await run_zg("--json", "account", "show", env=env, cwd=cwd)).json()
    [refund] = as_json["refunds"]
    assert refund["unlocks_at"] == refund["created_at"] + LOCK_TIME
    assert 0 < refund["unlocks_in_s"] <= LOCK_TIME
    assert refund["due"] is False

    early = await run_zg("account", "refund", "--process", env=env, cwd=cwd)
    assert early.code == 5
    assert re.search(
        "no refund has passed its lock time yet: the next, of 1 gwei .* " + soon, early.stderr
    )


async def test_chat_refuses_prices_above_the_users_ceiling(network: Network) -> None:
    env = {**zg_env(network), "ZG_SERVICE": SERVICE}
    cwd = network.state_dir.parent
    assert (
        await run_zg("account", "create", "--deposit", str(DEPOSIT), env=env, cwd=cwd)
    ).code == 0
    refused = await run_zg("chat", "hello", env={**env, "ZG_MAX_OUTPUT_PRICE": "19"}, cwd=cwd)
    assert refused.code == 5
    [line] = refused.stderr.strip().splitlines()
    assert "above your ceiling max_output_price of 19 wei" in line
    flagged = await run_zg("--max-output-price", "19", "chat", "hello", env=env, cwd=cwd)
    assert flagged.code == 5
    state = await network.state(network.user_key.address)
    assert state is None or state.unsettled == 0


async def test_rotate_key_registers_a_new_key_that_the_gateway_serves_once_it_sees_it(
    network: Network,
) -> None:
    env = {**zg_env(network), "ZG_SERVICE": SERVICE}
    cwd = network.state_dir.parent
    user = network.user_key.address
    assert (
        await run_zg("account", "create", "--deposit", str(DEPOSIT), env=env, cwd=cwd)
    ).code == 0
    assert (await run_zg("chat", "hello", env=env, cwd=cwd)).code == 0
    old = (await network.serving.get_account(user, network.provider)).signer

    rotated = await run_zg("--json", "account", "rotate-key", env=env, cwd=cwd)

    assert rotated.code == 0, rotated.stderr
    shown = rotated.json()
    account = await network.serving.get_account(user, network.provider)
    assert tuple(shown["signer"]) == account.signer != old
    assert tuple(shown["previous_signer"]) == old
    assert shown["previous_signer_expires_at"] == account.previous_signer_expires_at > 0
    # Sealed at the next generation, which a signature phished for the first cannot open
    # (unit/crypto/test_crypto_custody.py); another machine recovers it with the wallet alone.
    assert account.additional_info.startswith("zgk2:1:")
    async with network.client(elsewhere=True) as elsewhere:
        key = await elsewhere.recover_signing_key(network.provider)
    assert prv2pub(key).as_tuple() == account.signer
    listed = await run_zg("account", "show", env=env, cwd=cwd)
    assert re.search(
        r"previous key +│ still settles what it signed; expires at .*, in ", listed.stdout
    ), listed.stdout
    again = await run_zg("account", "rotate-key", env=env, cwd=cwd)
    assert again.code == 5
    [line] = again.stderr.strip().splitlines()
    assert "the signing key was rotated less than a lock time ago" in line

    # What the chain indexer does on SignerRotated (this fixture runs none): the gateway, which
    # cached the old key, reads the new one from the chain and serves it.
    await AccountStore(network.redis).load_from_chain(network.serving, user, network.provider)
    served = await run_zg("chat", "hello", env=env, cwd=cwd)
    assert served.code == 0, served.stderr
    state = await network.state(user)
    assert state is not None
    assert state.signer == account.signer
