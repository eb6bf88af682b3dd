# SPDX-License-Identifier: Apache-2.0
"""Every `zg` command, given bad arguments or a bad environment, answers with a message and a
documented exit code, never a traceback. The commands are read from the CLI itself, so a new
command is audited too (and fails here until it has a placeholder for each required value).

The commands run in process (click's runner, in a worker thread: the servers they talk to run
on this test session's event loop), against a real anvil; test_cli.py runs the installed
console script for the main cases."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tests.integration.sdk.conftest import SERVICE, Network, zg_env
from zg_shared.localservers import free_port
from zgserve.cli._app import cli

DOCUMENTED_EXITS = {0, 1, 2, 3, 4, 5, 6}
# A placeholder for each required value of any command; other values come from the env.
PLACEHOLDERS = {
    "amount": "1gwei",
    "prompt": "hello",
    "name": "x",
    "url": "http://127.0.0.1:9",
    "model": "m",
    "input_price": "1",
    "output_price": "1",
    "signer_address": "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
}
# Commands that would start something real when given valid values: only their usage is
# audited here (tests/integration/sdk/test_network.py runs them).
STARTS_PROCESSES = {("network", "up")}


def commands(group: click.Group = cli, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name)


def command_of(path: tuple[str, ...]) -> click.Command:
    found: click.Command = cli
    for name in path:
        assert isinstance(found, click.Group)
        found = found.commands[name]
    return found


def arguments(path: tuple[str, ...], evidence: Path, network_dir: Path) -> list[str]:
    """The command with a placeholder for every required option and argument."""
    args = list(path)
    for param in command_of(path).params:
        name = param.name or ""
        if name == "evidence":
            args.append(str(evidence))
        elif name == "directory":
            args += ["--dir", str(network_dir)]
        elif param.required and not (isinstance(param, click.Option) and param.envvar):
            assert name in PLACEHOLDERS, f"zg {' '.join(path)}: no placeholder for {name}"
            args += (
                [PLACEHOLDERS[name]]
                if isinstance(param, click.Argument)
                else [
                    param.opts[0],
                    PLACEHOLDERS[name],
                ]
            )
    return args


@dataclass
class Ran:
    code: int
    output: str


def invoke(args: list[str], env: dict[str, str]) -> Ran:
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        # An exception click's runner caught would have been a traceback for the user.
        return Ran(result.exit_code, f"Traceback: {result.exception!r}\n{result.output}")
    return Ran(result.exit_code, result.output)


@pytest.fixture
def audit_env(deployed: Network, nats_url: str) -> dict[str, str]:
    env = zg_env(deployed)
    env.update(
        {"ZG_SERVICE": SERVICE, "ZG_DEPLOYMENT": "", "ZG_GATEWAY_URL": "", "ZG_NATS_URL": nats_url}
    )
    return env


def _bad_environments(deployed: Network, tmp: Path) -> dict[str, dict[str, str]]:
    """name -> the environment's changes."""
    not_json = tmp / "not-deployment.json"
    not_json.write_text("[1, 2]")
    home_is_a_file = tmp / "a-file"
    home_is_a_file.write_text("")
    return {
        "malformed key 0xdeadbeef": {"ZG_PRIVATE_KEY": "0xdeadbeef"},
        "malformed key hello": {"ZG_PRIVATE_KEY": "hello"},
        "chain unreachable": {"ZG_RPC_URL": f"http://127.0.0.1:{free_port()}"},
        "rpc not a url": {"ZG_RPC_URL": "not a url"},
        "contract malformed": {"ZG_CONTRACT": "0x1234"},
        "no contract there": {"ZG_CONTRACT": deployed.provider},
        "deployment not an object": {
            "ZG_RPC_URL": "",
            "ZG_CONTRACT": "",
            "ZG_DEPLOYMENT": str(not_json),
        },
        "home is a file": {"ZG_HOME": str(home_is_a_file)},
        "ceiling not an amount": {"ZG_MAX_DEBT": "lots"},
        "provider malformed": {"ZG_PROVIDER": "0x12"},
    }


async def test_no_command_shows_a_traceback_for_bad_input(
    deployed: Network, audit_env: dict[str, str], tmp_path: Path
) -> None:
    evidence = tmp_path / "not-evidence.json"
    evidence.write_text(json.dumps({"format": "zgserve-evidence-v1"}))
    network_dir = tmp_path / "no-network"
    network_dir.mkdir()
    bad = _bad_environments(deployed, tmp_path)
    # The environment itself is good: the chain answers (no account yet).
    sane = await asyncio.to_thread(invoke, ["account", "show"], audit_env)
    assert (sane.code, sane.output) == (
        4,
        f"error: no account with provider {deployed.provider}: create one first\n",
    )
    failures: list[str] = []
    ran = 0
    for path in commands():
        args = arguments(path, evidence, network_dir)
        cases: list[tuple[str, list[str], dict[str, str], set[int]]] = [
            ("an unknown flag", [*args, "--no-such-flag"], {}, {2}),
            ("a stray argument", [*args, "stray", "more"], {}, {2}),
        ]
        if path not in STARTS_PROCESSES:
            # Exit 1 is for the unexpected: bad input must get a message of its own.
            cases += [(name, args, change, DOCUMENTED_EXITS - {1}) for name, change in bad.items()]
        for case, case_args, change, codes in cases:
            result = await asyncio.to_thread(invoke, case_args, {**audit_env, **change})
            ran += 1
            if os.environ.get("ZG_AUDIT_SHOW"):
                print(f"--- zg {' '.join(case_args)} ({case}): {result.code}\n{result.output}")
            if "Traceback" in result.output or result.code not in codes:
                failures.append(
                    f"zg {' '.join(case_args)} ({case}): exit {result.code}\n{result.output}"
                )
    assert ran > 100
    assert failures == []


async def test_connection_errors_name_the_endpoint_and_the_cause(
    deployed: Network, audit_env: dict[str, str]
) -> None:
    port = free_port()
    chain = await asyncio.to_thread(
        invoke, ["account", "show"], {**audit_env, "ZG_RPC_URL": f"http://127.0.0.1:{port}"}
    )
    assert chain.code == 6
    assert f"http://127.0.0.1:{port}" in chain.output
    assert "Connect call failed" in chain.output

    created = await asyncio.to_thread(
        invoke, ["account", "create", "--deposit", "1gwei"], audit_env
    )
    assert created.code == 0, created.output
    gateway = await asyncio.to_thread(
        invoke, ["chat", "--gateway", f"http://127.0.0.1:{port}", "hi"], audit_env
    )
    assert gateway.code == 6, gateway.output
    assert f"http://127.0.0.1:{port}" in gateway.output
    assert "Connect call failed" in gateway.output or "refused" in gateway.output

    nats = await asyncio.to_thread(
        invoke, ["provider", "settle", "--nats-url", f"nats://127.0.0.1:{port}"], audit_env
    )
    assert nats.code == 6, nats.output
    assert f"cannot reach NATS at nats://127.0.0.1:{port}: " in nats.output
    assert "Connect call failed" in nats.output
    assert "Traceback" not in nats.output
