# SPDX-License-Identifier: Apache-2.0
"""The settings every service shares: development keys refused in every spelling and on every
chain but a local one, production by default, secrets hidden from repr and read from files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account as EthAccount
from eth_account.hdaccount import key_from_seed, seed_from_mnemonic
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict

from zg_billing.config import BillingSettings
from zg_gateway.config import GatewaySettings
from zg_shared import devkeys
from zg_shared.bus import nats_servers
from zg_shared.settings import SECRETS_DIR_ENV, ServiceSettings, sentinel_addresses

REPO = Path(__file__).resolve().parents[3]
ANVIL_KEY_1 = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
OWN_KEY = "0x" + "11" * 32


def mnemonic_key(index: int) -> str:
    seed = seed_from_mnemonic(devkeys.DEV_MNEMONIC, "")
    return "0x" + key_from_seed(seed, f"m/44'/60'/0'/0/{index}").hex()


class KeySettings(ServiceSettings):
    """A service with a key, under a prefix of its own so the test environment is its own."""

    model_config = SettingsConfigDict(env_prefix="ZGTEST_", extra="ignore", frozen=True)

    wallet_private_key: SecretStr = SecretStr("")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("ENVIRONMENT", "ZGTEST_ENVIRONMENT", "ZGTEST_WALLET_PRIVATE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(SECRETS_DIR_ENV, str(tmp_path / "no-secrets-here"))


# Each spelling an operator might paste, of keys across the mnemonic's range.
DEV_KEY_FORMS = {
    "anvil key 0 with 0x": mnemonic_key(0),
    "anvil key 1 without 0x": ANVIL_KEY_1.removeprefix("0x"),
    "anvil key 1 upper case": ANVIL_KEY_1.upper(),
    "anvil key 1 upper-case hex, lower-case 0x": "0x" + ANVIL_KEY_1[2:].upper(),
    "anvil key 1 mixed case": "".join(c.upper() if i % 2 else c for i, c in enumerate(ANVIL_KEY_1)),
    "anvil key 1 with blanks and a newline": f"  {ANVIL_KEY_1}\n",
    "anvil key 3": mnemonic_key(3),
    "hardhat key 19": mnemonic_key(19),
    "key 999 of the mnemonic": mnemonic_key(999),
}


@pytest.mark.parametrize("key", DEV_KEY_FORMS.values(), ids=DEV_KEY_FORMS.keys())
def test_every_spelling_of_a_dev_key_is_recognised(key: str) -> None:
    assert devkeys.is_well_known_key(key)
    assert devkeys.is_well_known_key(SecretStr(key))


@pytest.mark.parametrize("key", DEV_KEY_FORMS.values(), ids=DEV_KEY_FORMS.keys())
def test_production_refuses_every_spelling_of_a_dev_key(key: str) -> None:
    with pytest.raises(ValidationError, match="public development key"):
        KeySettings(environment="production", wallet_private_key=key)


@pytest.mark.parametrize("key", DEV_KEY_FORMS.values(), ids=DEV_KEY_FORMS.keys())
def test_a_dev_key_is_refused_off_a_local_chain_even_in_development(key: str) -> None:
    settings = KeySettings(environment="development", wallet_private_key=key)
    settings.check_chain(31337)
    settings.check_chain(1337)
    for chain_id in (1, 16600, 16661, 11155111):
        with pytest.raises(devkeys.DevMaterialError, match="public development key"):
            settings.check_chain(chain_id)


def test_environment_defaults_to_production(monkeypatch: pytest.MonkeyPatch) -> None:
    assert KeySettings().environment == "production"
    assert KeySettings().is_production
    with pytest.raises(ValidationError, match="public development key"):
        KeySettings(wallet_private_key=ANVIL_KEY_1)
    monkeypatch.setenv("ZGTEST_ENVIRONMENT", "development")
    assert KeySettings(wallet_private_key=ANVIL_KEY_1).wallet_private_key


def test_a_key_of_ones_own_passes_everywhere() -> None:
    settings = KeySettings(wallet_private_key=OWN_KEY)
    settings.check_chain(1)
    assert not devkeys.is_well_known_key(OWN_KEY)
    assert not devkeys.is_well_known_key("not a key")
    assert not devkeys.is_well_known_key("")


def test_the_derived_keys_are_anvils() -> None:
    """anvil's documented account 0 and its key, derived here rather than listed."""
    key = mnemonic_key(0)
    assert key == "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
    assert EthAccount.from_key(key).address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert len(devkeys.well_known_keys()) == devkeys.DEV_ACCOUNTS


def test_repr_and_str_never_show_a_key_or_password() -> None:
    settings = BillingSettings(
        environment="test", provider_private_key=OWN_KEY, redis_password="hunter2-hunter2"
    )
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert OWN_KEY[2:] not in text
        assert "hunter2" not in text
    assert settings.provider_private_key.get_secret_value() == OWN_KEY
    assert settings.redis_options()["password"] == "hunter2-hunter2"


def test_secrets_are_read_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "ZGTEST_WALLET_PRIVATE_KEY").write_text(OWN_KEY + "\n")
    (folder / "ZGTEST_REDIS_PASSWORD").write_text("from-a-file\n")
    monkeypatch.setenv(SECRETS_DIR_ENV, str(folder))
    settings = KeySettings(environment="test", redis_username="gateway")
    assert settings.wallet_private_key.get_secret_value() == OWN_KEY
    assert settings.redis_options() == {"username": "gateway", "password": "from-a-file"}
    # A dev key in a file is refused like one from the environment.
    (folder / "ZGTEST_WALLET_PRIVATE_KEY").write_text(ANVIL_KEY_1)
    with pytest.raises(ValidationError, match="public development key"):
        KeySettings(environment="production")


def test_the_nats_password_is_read_from_its_file_and_never_shown(tmp_path: Path) -> None:
    """NATS_PASSWORD_FILE (what `zg provider settle --nats-password-file` sets): one line, read
    when the password itself is unset; a missing file is an error naming the path only."""
    password = tmp_path / "nats-password"
    password.write_text("from-its-file\n")
    access = KeySettings(
        environment="test", nats_username="admin", nats_password_file=password
    ).nats_access()
    assert access.password.get_secret_value() == "from-its-file"
    assert "from-its-file" not in repr(access)
    given = KeySettings(environment="test", nats_password="given", nats_password_file=password)
    assert given.nats_access().password.get_secret_value() == "given"
    with pytest.raises(ValidationError, match=r"cannot read the password file .*missing: No such"):
        KeySettings(environment="test", nats_password_file=tmp_path / "missing")


def test_redis_url_scheme_is_checked() -> None:
    KeySettings(redis_url="rediss://redis.internal:6380/0")
    with pytest.raises(ValidationError, match="redis_url"):
        KeySettings(redis_url="http://169.254.169.254/")


def test_nats_url_lists_a_clusters_servers_and_replicas_are_bounded() -> None:
    settings = KeySettings(nats_url=" nats://a:4222, nats://b:4222 ,nats://c:4222")
    assert nats_servers(settings.nats_url) == ["nats://a:4222", "nats://b:4222", "nats://c:4222"]
    assert nats_servers("nats://one:4222") == ["nats://one:4222"]
    assert settings.nats_stream_replicas == 1
    assert KeySettings(nats_stream_replicas=3).nats_stream_replicas == 3
    with pytest.raises(ValidationError, match="nats_url"):
        KeySettings(nats_url=" , ")
    for replicas in (0, 6):
        with pytest.raises(ValidationError, match="nats_stream_replicas"):
            KeySettings(nats_stream_replicas=replicas)


def test_sentinels_are_host_port_pairs() -> None:
    settings = KeySettings(redis_sentinels="s-0:26379, s-1:26379,10.0.0.3:26379")
    assert sentinel_addresses(settings.redis_sentinels) == [
        ("s-0", 26379),
        ("s-1", 26379),
        ("10.0.0.3", 26379),
    ]
    assert settings.redis_master_name == "zgserve"
    assert sentinel_addresses("") == []  # no sentinels: REDIS_URL is the server
    for bad in ("s-0", "s-0:port", ":26379"):
        with pytest.raises(ValidationError, match="redis_sentinels"):
            KeySettings(redis_sentinels=bad)


def gateway(receipt_key: str, provider: str, environment: str = "production") -> GatewaySettings:
    return GatewaySettings(
        environment=environment, provider_address=provider, receipt_private_key=receipt_key
    )


def test_gateway_refuses_the_providers_own_key_as_receipt_key_off_a_local_chain() -> None:
    provider = EthAccount.from_key(OWN_KEY).address
    settings = gateway(OWN_KEY, provider)
    settings.check_chain(31337)
    with pytest.raises(devkeys.DevMaterialError, match="provider's own key"):
        settings.check_chain(1)
    # Its own receipt key passes.
    gateway("0x" + "22" * 32, provider).check_chain(1)


# ---------------------------------------------------------------------- circuit keys


def test_the_committed_dev_keys_are_single_party() -> None:
    manifest = REPO / "circuits" / "keys" / "settle_batch_4" / "manifest.json"
    assert devkeys.is_single_party_key(manifest)
    devkeys.refuse_single_party_key_off_dev_chain(31337, manifest)
    with pytest.raises(devkeys.DevMaterialError, match="single-party"):
        devkeys.refuse_single_party_key_off_dev_chain(1, manifest)


def test_only_a_ceremony_manifest_passes_off_a_local_chain(tmp_path: Path) -> None:
    base = json.loads((REPO / "circuits/keys/settle_batch_4/manifest.json").read_text())
    ceremony = {
        **base,
        "ptau": {**base["ptau"], "source": "ceremony (operator-supplied)"},
        "phase2": {"contributions": None, "beacon": None},
    }
    assert not devkeys.is_single_party_manifest(ceremony)
    # A ceremony ptau with a phase 2 contributed on this machine alone is still single-party.
    local_phase2 = {**ceremony, "phase2": {"contributions": 3, "beacon": None}}
    assert devkeys.is_single_party_manifest(local_phase2)
    arkworks = {"WARNING": "DEV KEYS", "setup": "groth16py 0.2.0 setup(r1cs)"}
    assert devkeys.is_single_party_manifest(arkworks)
    assert devkeys.is_single_party_key(tmp_path / "no-manifest.json")
