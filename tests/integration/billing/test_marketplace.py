# SPDX-License-Identifier: Apache-2.0
"""The marketplace page in headless Chromium: it lists the provider's services with prices, and
for an address its account and the settlements the chain indexer confirmed. A screenshot is
saved to `test-artifacts/marketplace.png`."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.integration.billing.conftest import (
    DEPOSIT,
    INPUT_PRICE,
    Stack,
    running_billing,
)
from tests.integration.polling import eventually

pytestmark = pytest.mark.slow
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("needs Debian's chromium and chromium-driver (scripts/setup.sh installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=ChromeService(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


async def test_the_page_lists_services_and_a_users_settlements(
    stack: Stack, browser: webdriver.Chrome
) -> None:
    user = stack.users[0]
    fees = [await stack.send(user, "show me on the marketplace") for _ in range(2)]
    async with running_billing(stack):

        async def settled() -> bool:
            return sum(e.amount for e in await stack.settled_on_chain()) == sum(fees)

        await eventually(settled, what="settled")
        async with aiohttp.ClientSession() as http:

            async def listed() -> bool:
                async with http.get(f"{stack.gateway_url}/v1/accounts/{user.address}") as r:
                    return r.status == 200 and bool((await r.json())["settlements"])

            await eventually(listed, what="the indexer's settlement in Redis")

    def browse() -> tuple[list[str], str, list[list[str]]]:
        browser.get(f"{stack.gateway_url}/?address={user.address}")
        wait = WebDriverWait(browser, 20)
        wait.until(
            expected_conditions.text_to_be_present_in_element(
                (By.CSS_SELECTOR, "#services tbody"), "chat"
            )
        )
        wait.until(expected_conditions.presence_of_element_located((By.ID, "settlements")))
        services = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#services tbody tr")]
        account = browser.find_element(By.ID, "account").text
        rows = [
            [c.text for c in r.find_elements(By.TAG_NAME, "td")]
            for r in browser.find_elements(By.CSS_SELECTOR, "#settlements tr")
        ]
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "marketplace.png"))
        return services, account, [r for r in rows if r]

    services, account, settlements = await asyncio.to_thread(browse)

    assert len(services) == 1
    assert "chat" in services[0]
    assert str(INPUT_PRICE) in services[0]
    remaining_eth = (DEPOSIT - sum(fees)) / 10**18
    assert f"{remaining_eth:.9f}".rstrip("0") in account
    assert sum(int(row[1]) for row in settlements) == sum(fees)
    assert all(row[3].startswith("0x") for row in settlements)
    assert (ARTIFACTS / "marketplace.png").stat().st_size > 10_000


async def test_an_unknown_address_gets_a_clear_error(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{stack.gateway_url}/v1/accounts/not-an-address") as response:
            assert response.status == 400
            assert (await response.json())["error"]["code"] == "invalid_address"
        stranger = "0x000000000000000000000000000000000000bEEF"
        async with http.get(f"{stack.gateway_url}/v1/accounts/{stranger}") as response:
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "no_account"
