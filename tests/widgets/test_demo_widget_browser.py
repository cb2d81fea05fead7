"""The real widget against the real app: `stamp demo` in a child process, Chromium in front.

The other browser tests pin the widget's behaviour against a fake proxy; this one shows
the whole chain works: loader, panel, the signed app proxy, the ledger, redemption
through the (stand-in) Shopify Admin API.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.demo.test_cli import DemoProcess, _free_port
from tests.widgets.conftest import ARTIFACTS

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder: Path = tmp_path_factory.mktemp("demo-browser")
    env = {
        **os.environ,
        "STAMP_ENV": "dev",
        "DATABASE_URL": f"sqlite:///{folder}/demo.db",
        "QUEUE_URL": f"sqlite:///{folder}/queue.db",
        "COLUMNS": "200",
    }
    port = _free_port()
    process = DemoProcess(env, port)
    try:
        process.wait_for("Press Ctrl-C to stop.", 90)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.interrupt()


def test_a_shopper_sees_the_balance_redeems_and_copies_the_code(
    browser: Browser, demo_url: str
) -> None:
    from playwright.sync_api import expect

    # given Ada (763 points) signed in on the demo storefront
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=demo_url)
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(demo_url + "/demo")
    page.get_by_label("Signed in as").select_option(label="Ada Lovelace (account)")
    page.get_by_role("button", name="Show").click()

    # when she opens the launcher from the keyboard
    launcher = page.locator(".stamp-launcher")
    launcher.focus()
    page.keyboard.press("Enter")
    panel = page.get_by_role("dialog")

    # then she sees her real balance, redeems 500 points and copies the code
    expect(panel.locator(".stamp-balance__value")).to_have_text("763")
    panel.get_by_role("button", name=re.compile("Redeem 5 USD off")).click()
    code = panel.locator(".stamp-code__value")
    expect(code).to_have_text(re.compile(r"^STAMP-[0-9A-Z]{10}$"))
    expect(panel.locator(".stamp-balance__value")).to_have_text("263")
    panel.get_by_role("button", name="Copy code").click()
    assert page.evaluate("() => navigator.clipboard.readText()") == code.inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo-redeemed.png"), animations="disabled")

    # and the keyboard stays inside the dialog until Escape returns focus to the launcher
    for _ in range(30):
        page.keyboard.press("Tab")
        assert page.evaluate("() => !!document.activeElement.closest('[role=dialog]')")
    page.keyboard.press("Escape")
    expect(launcher).to_be_focused()

    # and the ledger agrees: the storefront page (read from the database) shows 263 for Ada
    refreshed = httpx.get(demo_url + "/demo", timeout=10)
    assert 'id="points-balance">263<' in refreshed.text
    assert all(url.startswith("http://127.0.0.1:") for url in requests)
    context.close()
