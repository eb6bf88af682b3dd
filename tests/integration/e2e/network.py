# SPDX-License-Identifier: Apache-2.0
"""A provider's whole network as processes (zg_shared.localnet) with paying users, and the
checks every end-to-end test and fault drill ends with: each user paid exactly the fees they
signed, once, and the provider's wallet gained exactly that less its gas."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from eth_account import Account as EthAccount
from nats.js import JetStreamContext

from tests.integration.gateway.conftest import User, chat
from tests.integration.jetstream import stream_events
from tests.integration.polling import eventually
from zg_shared.bus import connect as connect_nats
from zg_shared.chain import FeesSettled, ServingClient, Web3Client, checksum, connect
from zg_shared.crypto import generate_private_key, prv2pub
from zg_shared.events import RequestServedV1, SettlementConfirmedV1
from zg_shared.localnet import LocalNetwork

DEPOSIT = 10**17
SERVICE = "demo-chat"


class Network:
    def __init__(self, net: LocalNetwork, w3: Web3Client, js: JetStreamContext) -> None:
        self.net = net
        self.w3 = w3
        self.js = js
        assert net.deployment is not None
        self.provider = checksum(net.deployment.provider)
        self.serving = ServingClient(w3, net.deployment.serving)
        self.users: list[User] = []
        self.signed: dict[str, list[int]] = {}
        # The last nonce each user was answered (and so charged) for: the chain's nonce at the end.
        self.answered_nonce: dict[str, int] = {}
        self.http: aiohttp.ClientSession | None = None
        self.gateway_url = net.gateway_url  # where users send requests (a drill's balancer)
        self.input_price = net.deployment.services[0].input_price
        self.provider_wallet_at_start = 0
        self.block_at_start = 0

    async def add_user(self, index: int) -> User:
        key = EthAccount.from_key(self.net.accounts[index].private_key)
        signing_key = generate_private_key()
        await self.serving.as_sender(key).add_account(
            self.provider, prv2pub(signing_key).as_tuple(), value=DEPOSIT
        )
        user = User(key, signing_key)
        self.users.append(user)
        self.signed[user.address] = []
        self.answered_nonce[user.address] = 0
        return user

    async def send(self, user: User, words: str = "pay for these words") -> None:
        status, text = await self.try_send(user, words)
        assert status == 200, text

    async def try_send(self, user: User, words: str = "pay for these words") -> tuple[int, str]:
        """One paid request; only an answered one (200) counts as signed and owed. Another
        answer (or none: status 0) leaves its nonce unused or voided, never charged."""
        assert self.http is not None
        input_fee = len(words.split()) * self.input_price
        nonce = user.next_nonce
        try:
            async with self.http.post(
                f"{self.gateway_url}/v1/proxy/{SERVICE}/chat/completions",
                json=chat(words),
                headers=user.headers(self.provider, input_fee),
            ) as response:
                text = await response.text()
                status = response.status
        except aiohttp.ClientError as exc:
            return 0, repr(exc)
        if status == 200:
            self.signed[user.address].append(input_fee)
            self.answered_nonce[user.address] = nonce
        return status, text

    async def settled(self, block: int | None = None) -> list[FeesSettled]:
        """The FeesSettled events up to `block` (the head by default)."""
        head = block if block is not None else await self.w3.eth.block_number
        events = await self.serving.get_events(0, head)
        return [e for e in events if isinstance(e, FeesSettled)]

    async def all_settled(self) -> bool:
        settled = await self.settled()
        return sum(e.amount for e in settled) == sum(map(sum, self.signed.values()))

    async def wait_settled(self, within_s: float = 180.0) -> None:
        deadline = asyncio.get_running_loop().time() + within_s
        while not await self.all_settled():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"settled {sum(e.amount for e in await self.settled())} of "
                    f"{sum(map(sum, self.signed.values()))} wei in {within_s}s; "
                    f"logs in {self.net.workdir / 'logs'}"
                )
            await asyncio.sleep(0.5)

    async def assert_exactly_once(self) -> None:
        """Each user paid exactly the fees they signed, in nonce order, once; the provider got
        exactly their sum; billing's confirmations match the chain's FeesSettled events."""
        # Everything as of one block: a transaction mined between two reads (a deposed
        # billing's late one, which reverts and costs gas) would set the wallet against a list
        # of transactions that does not hold it.
        head = await self.w3.eth.block_number
        settled = await self.settled(head)
        for user in self.users:
            mine = [e for e in settled if e.user == user.address]
            assert sum(e.amount for e in mine) == sum(self.signed[user.address])
            finals = [e.final_nonce for e in mine]
            assert finals == sorted(set(finals))  # never the same nonces twice
            account = await self.serving.get_account(user.address, self.provider, block=head)
            assert account.nonce == self.answered_nonce[user.address]
            assert account.balance == DEPOSIT - sum(self.signed[user.address])
        earned = sum(e.amount for e in settled)
        assert earned == sum(map(sum, self.signed.values()))
        # What the provider's wallet gained: the settlements, less the gas of every transaction
        # it sent (a reverted one costs gas and pays nothing).
        sent = await self.provider_transactions(head)
        settling = {_hex(e.position.transaction_hash) for e in settled if e.position}
        assert settling <= {tx for tx, _, _ in sent}
        wallet = await self.w3.eth.get_balance(self.provider, head)
        assert wallet == self.provider_wallet_at_start + earned - sum(gas for _, gas, _ in sent)
        await eventually(lambda: self._confirmations_match(settled), within_s=60)

    async def provider_transactions(self, until: int | None = None) -> list[tuple[str, int, bool]]:
        """(hash, gas paid in wei, succeeded) of each transaction the provider's wallet sent
        since the network started (up to block `until`, the head by default)."""
        head = until if until is not None else await self.w3.eth.block_number
        found = []
        for number in range(self.block_at_start + 1, head + 1):
            block: Any = await self.w3.eth.get_block(number, full_transactions=True)
            for tx in block["transactions"]:
                if checksum(tx["from"]) != self.provider:
                    continue
                receipt: Any = await self.w3.eth.get_transaction_receipt(tx["hash"])
                paid = receipt["gasUsed"] * receipt["effectiveGasPrice"]
                found.append((_hex(receipt["transactionHash"]), paid, receipt["status"] == 1))
        return found

    async def _confirmations_match(self, settled: list[FeesSettled]) -> bool:
        confirmed = [p for _, p in await stream_events(self.js, {SettlementConfirmedV1.SUBJECT})]
        chunks = {
            (c["user"], c["final_nonce"], c["total_fee"]) for p in confirmed for c in p["chunks"]
        }
        return chunks == {(e.user, e.final_nonce, e.amount) for e in settled}


def _hex(value: object) -> str:
    """A transaction hash as lowercase 0x-hex, whether bytes or a string."""
    text = bytes(value).hex() if isinstance(value, bytes | bytearray) else str(value)
    return "0x" + text.lower().removeprefix("0x")


# Billing settles whatever is owed at once, often: the drills catch settlements mid-flight.
EAGER_BILLING = {
    "BILLING_THRESHOLD_FEE_WEI": "1",
    "BILLING_TICK_S": "0.3",
    "BILLING_LOG_LEVEL": "DEBUG",
}


@contextlib.asynccontextmanager
async def running_network(workdir: Path, **options: Any) -> AsyncIterator[Network]:
    """A LocalNetwork (`options` are its own; billing eager, the committed N=4 keys unless
    said) with a web3 client, a JetStream client and an HTTP session for the users."""
    overrides: Mapping[str, str] = {**EAGER_BILLING, **options.pop("overrides", {})}
    options.setdefault("circuit_sizes", (4,))  # proofs in ~1 s (the default N=64: ~15 s)
    net = LocalNetwork(workdir, overrides=overrides, **options)
    try:
        await net.start()
        w3 = connect(net.anvil.rpc_url if net.anvil else "")
        client = await connect_nats(net.nats_url, max_reconnect_attempts=-1)
        network = Network(net, w3, client.jetstream())
        network.provider_wallet_at_start = await w3.eth.get_balance(network.provider)
        network.block_at_start = await w3.eth.block_number
        async with aiohttp.ClientSession() as http:
            network.http = http
            yield network
        await client.close()
        await w3.provider.disconnect()
    finally:
        await net.stop()


async def streams_in_flight(
    network: Network, user: User, url: str, count: int, within_s: float = 60.0
) -> list[asyncio.Task[None]]:
    """`count` streamed requests of `user` to the gateway at `url`, returned once each is
    being relayed (admitted, in flight: what a killed gateway leaves to the sweep); the tasks
    end when their streams do, or are cut off."""
    assert network.http is not None
    http = network.http
    began = asyncio.Semaphore(0)
    input_fee = 3 * network.input_price

    async def stream() -> None:
        headers = user.headers(network.provider, input_fee)
        with contextlib.suppress(aiohttp.ClientError):
            async with http.post(
                f"{url}/v1/proxy/{SERVICE}/chat/completions",
                json=chat("stream these words", stream=True),
                headers=headers,
            ) as resp:
                assert resp.status == 200, await resp.text()
                await resp.content.readany()
                began.release()
                await resp.read()

    tasks = [asyncio.create_task(stream()) for _ in range(count)]
    async with asyncio.timeout(within_s):
        for _ in range(count):
            await began.acquire()
    return tasks


async def swept(
    js: JetStreamContext, at_least: int, within_s: float = 60.0
) -> list[dict[str, Any]]:
    """The served events of requests a stopped gateway left in flight (voided by another's
    sweep), once there are `at_least` of them."""
    found: list[dict[str, Any]] = []

    async def enough() -> bool:
        events = await stream_events(js, {RequestServedV1.SUBJECT})
        found[:] = [p for _, p in events if p.get("reason") == "gateway_stopped"]
        return len(found) >= at_least

    await eventually(enough, within_s, f"{at_least} swept requests on the stream")
    return found


async def count_above(js: JetStreamContext, subject: str, count: int) -> bool:
    return len(await stream_events(js, {subject})) > count


class Load:
    """Several users sending requests, each in nonce order and `pause_s` apart, until stopped:
    the traffic a drill takes a server down under (paced, so that settling it all fits a
    test). A request the gateway does not answer with 200 fails the drill (raised from
    `stop`)."""

    def __init__(
        self,
        network: Network,
        users: list[User],
        pause_s: float = 0.5,
        *,
        failures_allowed: bool = False,
    ) -> None:
        """`failures_allowed`: a request not answered is counted (`failed`), not raised, and
        the user goes on with the next nonce (what a drill expects while a server it needs is
        being replaced)."""
        self.network = network
        self.users = users
        self.pause_s = pause_s
        self.failures_allowed = failures_allowed
        self.served = 0
        self.failed = 0
        self.statuses: dict[int, int] = {}
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Load:
        self._tasks = [asyncio.create_task(self._run(user)) for user in self.users]
        return self

    async def __aexit__(self, *_: object) -> None:
        """A drill that failed still stops its users before the network goes."""
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, user: User) -> None:
        while not self._stop.is_set():
            if self.failures_allowed:
                status, _ = await self.network.try_send(user)
                self.statuses[status] = self.statuses.get(status, 0) + 1
            else:
                await self.network.send(user)
                status = 200
            if status == 200:
                self.served += 1
            else:
                self.failed += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.pause_s):
                    await self._stop.wait()

    async def served_at_least(self, count: int, within_s: float = 60.0) -> None:
        async def reached() -> bool:
            if any(task.done() for task in self._tasks):
                await self.stop()  # raises what failed
            return self.served >= count

        await eventually(reached, within_s, f"{count} requests served")

    async def stop(self) -> int:
        """Stops the users after their requests in flight; returns how many were served."""
        self._stop.set()
        await asyncio.gather(*self._tasks)
        return self.served
