"""The real widget on a WooCommerce page: the plugin's markup, its token, the real app.

The page is what `stamp-loyalty.php` makes WordPress print (an inline `window.StampConfig`
before a deferred loader tag), with a customer token minted exactly as the plugin mints it.
The app runs in this process (uvicorn in a thread) on a migrated SQLite database seeded
with a connected store, so respx answers the store's coupon API and nothing leaves the
machine. Chromium opens the launcher, sees the balance, redeems and copies the code.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import respx
import uvicorn
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from app import migrate
from app.integrations.woocommerce.orders import apply_order
from app.integrations.woocommerce.storefront import mint_customer_token
from app.main import create_app
from app.settings import Settings
from app.state import State
from tests.conftest import make_settings
from tests.integrations.woocommerce.support import (
    API,
    STORE_HOST,
    WEBHOOK_SECRET,
    create_woo_shop,
    order,
    wire,
)
from tests.widgets.conftest import ARTIFACTS

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.browser

PUBLIC_ADDRESS = "93.184.215.14"  # the store's host resolves here; respx answers, nothing is sent
EMAIL = "jo.buyer@example.com"
ORDERS = 8  # 8 x 72 points


@dataclass(frozen=True)
class WooSite:
    base: str
    coupons: respx.Route


def _token(shop_id: int) -> str:
    """The plugin's own PHP minter when php is installed; else its byte-equal Python twin
    (tests/integrations/woocommerce/test_storefront.py proves they agree)."""
    now = int(time.time())
    if shutil.which("php"):
        from tests.integrations.woocommerce.test_storefront import php_token

        return php_token(shop_id, WEBHOOK_SECRET, 12, EMAIL, now)
    return mint_customer_token(shop_id, WEBHOOK_SECRET, "12", EMAIL, now)


def account_page(base: str, shop_id: int) -> str:
    """`My account` as WordPress prints it with the plugin active and customer 12 logged in."""
    config = {
        "apiBase": f"{base}/woo/api",
        "platform": "woocommerce",
        "customerToken": _token(shop_id),
    }
    return (
        '<!DOCTYPE html><html lang="en-US"><head><meta charset="UTF-8">'
        "<title>My account – Example Store</title></head>"
        '<body class="woocommerce-account woocommerce-page logged-in">'
        '<main id="primary"><h1>My account</h1><div class="woocommerce">'
        "<p>Hello <strong>jo</strong></p></div></main>"
        '<script id="stamp-loader-js-before">\n'
        f"window.StampConfig = {json.dumps(config, separators=(',', ':'))};\n"
        "</script>\n"
        f'<script src="{base}/widgets/static/stamp-loader.js?ver=0.1.0" id="stamp-loader-js" '
        'defer data-wp-strategy="defer"></script>'
        "</body></html>"
    )


async def _seed(settings: Settings) -> int:
    state = State.create(settings)
    try:
        async with state.sessionmaker() as session:
            shop = await create_woo_shop(session, settings)
            for number in range(ORDERS):
                await apply_order(session, shop, order(order_id=700 + number, status="completed"))
            await session.commit()
            return shop.id
    finally:
        await state.aclose()


@pytest.fixture(scope="module")
def woo_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WooSite]:
    folder: Path = tmp_path_factory.mktemp("woo-browser")
    settings = make_settings(f"sqlite:///{folder}/woo.db")
    real_getaddrinfo = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == STORE_HOST:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC_ADDRESS, 443))]
        return real_getaddrinfo(host, *args, **kwargs)

    with (
        pytest.MonkeyPatch.context() as patch,
        respx.mock(assert_all_mocked=True, assert_all_called=False) as store,
    ):
        patch.setattr(socket, "getaddrinfo", resolve)
        store.route(host="127.0.0.1").pass_through()
        coupons = store.post(f"{API}/coupons").respond(201, json={"id": 512})
        # Playwright's loop owns this thread: migrate and seed on another one.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(migrate.upgrade, settings.DATABASE_URL).result(timeout=120)
            shop_id = pool.submit(asyncio.run, _seed(settings)).result(timeout=60)

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"

        async def page(request: Request) -> Response:
            return HTMLResponse(account_page(base, shop_id))

        application = wire(create_app(settings))
        application.router.routes.insert(0, Route("/my-account/", page))
        server = uvicorn.Server(uvicorn.Config(application, log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the app did not start")
            time.sleep(0.02)
        try:
            yield WooSite(base, coupons)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            sock.close()


def test_a_woocommerce_shopper_sees_the_balance_redeems_and_copies_the_code(
    browser: Browser, woo_site: WooSite
) -> None:
    from playwright.sync_api import expect

    # given Jo logged in on the account page: 7 orders of 72 points reach Silver, and
    # the 8th earns 72 × 1.25 = 90, so 594
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=woo_site.base)
    page = context.new_page()
    calls: list[tuple[str, str | None]] = []
    page.on("request", lambda r: calls.append((r.url, r.headers.get("authorization"))))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(woo_site.base + "/my-account/")

    # when she opens the launcher
    page.locator(".stamp-launcher").click()
    panel = page.get_by_role("dialog")

    # then she sees her real balance, redeems 500 points as a coupon and copies the code
    expect(panel.locator(".stamp-balance__value")).to_have_text("594")
    panel.get_by_role("button", name=re.compile(r"Redeem .* off")).click()
    code = panel.locator(".stamp-code__value")
    expect(code).to_have_text(re.compile(r"^[0-9A-Z-]{8,}$"))
    expect(panel.locator(".stamp-balance__value")).to_have_text("94")
    panel.get_by_role("button", name="Copy code").click()
    assert page.evaluate("() => navigator.clipboard.readText()") == code.inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "woocommerce-redeemed.png"), animations="disabled")

    # and every widget call went to the Woo API with the plugin's bearer token
    api = [(url, auth) for url, auth in calls if "/woo/api/" in url]
    assert {re.sub(r"\?.*", "", url).rsplit("/", 1)[1] for url, _ in api} >= {"state", "redeem"}
    assert all(auth is not None and auth.startswith("Bearer ey") for _, auth in api)
    assert not [url for url, _ in calls if "/apps/stamp" in url]
    # and the store got one single-use coupon restricted to her email, for the shown code
    assert woo_site.coupons.call_count == 1
    body = json.loads(woo_site.coupons.calls.last.request.content)
    assert body["usage_limit"] == 1
    assert body["email_restrictions"] == [EMAIL]
    assert body["code"].upper() == code.inner_text().upper()
    assert errors == []
    context.close()
