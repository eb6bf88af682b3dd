# SPDX-License-Identifier: Apache-2.0
"""The marketplace page in headless Chromium, at phone and desktop widths: every service
registered on the contract (every provider, with its gateway URL) with readable prices and the
exact wei on hover, and for an address its account, its refunds with their unlock times and the
settlements the chain indexer confirmed. Nothing scrolls sideways or spills out of its box, and
the browser logs no error (a missing favicon would be one). Screenshots at 420 and 1280 px are
saved to `test-artifacts/marketplace-{width}.png`."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from eth_account.signers.local import LocalAccount
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import LOCK_TIME
from tests.integration.billing.conftest import DEPOSIT, Stack, running_billing
from tests.integration.polling import eventually
from zg_shared.chain import ServiceParams

pytestmark = pytest.mark.slow
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
REFUND = 10**15
OTHER_GATEWAY = "https://gateway.other-provider.example/v1"

# Elements that reach outside the viewport, or whose content is wider than their own box (a
# number spilling out of its card). Inputs scroll their text inside by design.
LAYOUT = """
const width = document.documentElement.clientWidth;
const spilled = [];
for (const node of document.querySelectorAll("header *, main *")) {
  const box = node.getBoundingClientRect();
  if (box.width === 0 || node.tagName === "INPUT") continue;
  const outside = box.left < -0.5 || box.right > width + 0.5;
  const overflowing = node.clientWidth > 0 && node.scrollWidth > node.clientWidth + 1;
  const what = `${node.tagName}.${node.className}: ${node.textContent.slice(0, 60)}`;
  if (outside || overflowing) spilled.push(what);
}
return {scrollWidth: document.documentElement.scrollWidth, width: width, spilled: spilled};
"""


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("needs Debian's chromium and chromium-driver (scripts/setup.sh installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=ChromeService(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def texts(elements: list[WebElement]) -> list[str]:
    return [e.text for e in elements]


def browse(browser: webdriver.Chrome, url: str, width: int) -> dict[str, Any]:
    """Loads the page at `width` px, checks its layout and saves a full-page screenshot."""
    metrics = {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    browser.get(url)
    wait = WebDriverWait(browser, 20)
    wait.until(
        expected_conditions.text_to_be_present_in_element(
            (By.CSS_SELECTOR, "#services tbody"), "embed"
        )
    )
    wait.until(expected_conditions.presence_of_element_located((By.ID, "settlements")))
    layout: dict[str, Any] = browser.execute_script(LAYOUT)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": height})
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"marketplace-{width}.png"
    browser.save_screenshot(str(shot))
    services = browser.find_elements(By.CSS_SELECTOR, "#services tbody tr")
    return {
        **layout,
        "screenshot": shot,
        "services": texts(services),
        "links": [
            a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#services a")
        ],
        "prices": {
            e.text: e.get_attribute("title")
            for e in browser.find_elements(By.CSS_SELECTOR, "#services td .exact.num")
        },
        "account": browser.find_element(By.ID, "account").text,
        "refunds": [
            {
                "amount": r.find_element(By.CSS_SELECTOR, ".exact").get_attribute("title"),
                "unlock": r.find_element(By.CSS_SELECTOR, ".unlock").get_attribute("title"),
                "status": r.find_element(By.CSS_SELECTOR, ".badge").text,
            }
            for r in browser.find_elements(By.CSS_SELECTOR, "#refunds tbody tr")
        ],
        "settled": [
            e.get_attribute("title")
            for e in browser.find_elements(By.CSS_SELECTOR, "#settlements tbody .exact.num")
        ],
        "console": [
            entry
            for entry in browser.get_log("browser")  # type: ignore[no-untyped-call]
            if entry["level"] in ("SEVERE", "WARNING")
        ],
    }


async def test_the_page_lists_every_service_and_a_users_account_at_any_width(
    stack: Stack, browser: webdriver.Chrome, keys: list[LocalAccount]
) -> None:
    other = keys[3]
    await stack.serving.as_sender(other).add_or_update_service(
        ServiceParams(
            name="embed",
            service_type="embeddings",
            url=OTHER_GATEWAY,
            model="bge-small",
            input_price=10,
            output_price=0,
            signer_address=other.address,
        )
    )
    user = stack.users[0]
    user.next_nonce = int(time.time() * 1_000_000) * 1024  # as the SDK draws them: 22 digits
    fees = [await stack.send(user, "show me on the marketplace") for _ in range(2)]
    async with running_billing(stack):

        async def settled() -> bool:
            return sum(e.amount for e in await stack.settled_on_chain()) == sum(fees)

        await eventually(settled, what="settled")
    refund = await stack.serving.as_sender(user.key).request_refund(stack.provider.address, REFUND)
    requested_at = (await stack.w3.eth.get_block(refund.block_number))["timestamp"]
    async with aiohttp.ClientSession() as http:

        async def indexed() -> bool:
            async with http.get(f"{stack.gateway_url}/v1/accounts/{user.address}") as r:
                account = await r.json()
            async with http.get(f"{stack.gateway_url}/v1/marketplace/services") as r:
                services = (await r.json())["services"]
            return bool(account["settlements"]) and bool(account["refunds"]) and len(services) == 2

        await eventually(indexed, what="the indexer's settlement, refund and services in Redis")

    url = f"{stack.gateway_url}/?address={user.address}"
    for width in (420, 1280):
        page = await asyncio.to_thread(browse, browser, url, width)

        assert page["scrollWidth"] <= width, f"scrolls sideways at {width} px"
        assert page["spilled"] == [], f"clipped or spilling at {width} px"
        assert page["console"] == []
        assert page["screenshot"].stat().st_size > 10_000

        chat, embed = page["services"]
        assert chat.startswith("chat")
        assert "this gateway" in chat
        assert embed.startswith("embed")
        assert OTHER_GATEWAY in page["links"]
        assert page["prices"] == {  # per 1M units; the exact wei per unit on hover
            "0.001 0G": "1000000000 wei per unit",
            "0.002 0G": "2000000000 wei per unit",
            "0.01 gwei": "10 wei per unit",
            "free": "0 wei per unit",
        }

        left = DEPOSIT - sum(fees)
        assert f"{left / 10**18:.9f}".rstrip("0") + " 0G" in page["account"]
        [shown] = page["refunds"]
        unlock = datetime.fromtimestamp(requested_at + LOCK_TIME, UTC)
        assert shown["amount"] == f"{REFUND} wei"
        assert shown["unlock"] == unlock.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        assert shown["status"].startswith("in ")  # e.g. "in 59 min 58 s"
        assert sum(int(title.removesuffix(" wei")) for title in page["settled"]) == sum(fees)


async def test_an_unknown_address_gets_a_clear_error_and_the_favicon_is_there(
    stack: Stack,
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{stack.gateway_url}/v1/accounts/not-an-address") as response:
            assert response.status == 400
            assert (await response.json())["error"]["code"] == "invalid_address"
        stranger = "0x000000000000000000000000000000000000bEEF"
        async with http.get(f"{stack.gateway_url}/v1/accounts/{stranger}") as response:
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "no_account"
        for path in ("/favicon.svg", "/favicon.ico"):
            async with http.get(f"{stack.gateway_url}{path}") as response:
                assert response.status == 200
                assert response.content_type == "image/svg+xml"
                assert (await response.read()).startswith(b"<svg")
