"""Fixtures for the widget's browser tests: the fake storefront served by uvicorn in a thread,
Debian's Chromium driven by Playwright, and a page that records every request and error.

Outside CI a missing Chromium or Playwright skips these tests with the reason; with `CI=true`
it fails them (`service_missing`).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

import pytest
import uvicorn

from tests.conftest import service_missing
from tests.widgets.fake_proxy import FakeLoyalty, build_app

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Dialog, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="session")
def fake() -> FakeLoyalty:
    return FakeLoyalty()


@pytest.fixture(scope="session")
def storefront_url(fake: FakeLoyalty) -> Iterator[str]:
    """The fake storefront on a free 127.0.0.1 port, for the whole session."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(build_app(fake), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fake storefront did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    yield from launched_chromium()


def launched_chromium() -> Iterator[Browser]:
    """Debian's headless Chromium through Playwright, closed afterwards; a missing browser
    fails under CI and skips elsewhere. Shared by every browser fixture."""
    if not CHROMIUM.exists():
        service_missing("Chromium", FileNotFoundError(f"{CHROMIUM} (apt-get install chromium)"))
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as exc:
        service_missing("Playwright for Python", exc)
        raise
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
        except Error as exc:
            service_missing("Chromium", exc)
            raise
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Storefront:
    """One browser page on the fake storefront, with what it requested and what went wrong."""

    page: Page
    base: str
    fake: FakeLoyalty
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def visit(self, path: str = "/", **query: str) -> None:
        self.page.goto(self.base + path + ("?" + urlencode(query) if query else ""))

    def api_calls(self, path: str) -> list[str]:
        return [url for url in self.requests if urlsplit(url).path == "/apps/stamp" + path]

    def idle(self) -> None:
        """Wait until the browser has run the idle callbacks queued so far (ours runs last)."""
        self.page.evaluate(
            "() => new Promise(done => requestIdleCallback(() => setTimeout(done, 0)))"
        )

    def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), animations="disabled")


@pytest.fixture
def shop(browser: Browser, storefront_url: str, fake: FakeLoyalty) -> Iterator[Storefront]:
    """A fresh context and page; afterwards, no script error, alert or off-machine request."""
    fake.reset()
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=storefront_url)
    page = context.new_page()
    shop = Storefront(page=page, base=storefront_url, fake=fake)
    page.on("request", lambda request: shop.requests.append(request.url))
    page.on("pageerror", lambda error: shop.errors.append(str(error)))

    def on_dialog(dialog: Dialog) -> None:
        shop.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.set_default_timeout(10_000)
    try:
        yield shop
    finally:
        context.close()
    assert shop.errors == [], f"script errors on the page: {shop.errors}"
    assert shop.dialogs == [], f"alert/confirm dialogs opened: {shop.dialogs}"
    off_machine = [url for url in shop.requests if urlsplit(url).hostname != "127.0.0.1"]
    assert off_machine == [], f"requests left 127.0.0.1: {off_machine}"
