"""The admin in headless Chromium, as a merchant uses it outside Shopify (login link, no
CDN): change the earning rate and watch the preview, save, and a later order earns at the
new rate; approve a held referral; replay a dead letter; adjust a member.

The real app runs under uvicorn in a thread on its own SQLite database; Shopify's CDN is
blocked, so the pages must be complete with Stamp's own stylesheet.
"""

from __future__ import annotations

import asyncio
import copy
import json
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn

from app import migrate
from app.admin import auth
from app.db import unit_of_work
from app.models import DeadLetter, Shop
from app.settings import Settings
from app.state import State
from tests.builders import shopify_webhook
from tests.conftest import _TMP, make_settings
from tests.referrals.conftest import deliver, order_payload, referral_shop
from tests.referrals.test_attribution import RITA_ORDER, rita_has_ordered
from tests.widgets.conftest import ARTIFACTS, launched_chromium

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

T = TypeVar("T")
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "shopify" / "orders_paid.json"


@dataclass
class Admin:
    base: str
    settings: Settings
    shop_id: int
    referral_id: int
    letter_id: int


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a thread of its own (Playwright's sync API owns an
    event loop on this one)."""
    return _in_thread(lambda: asyncio.run(coroutine))


def _in_thread(work: Callable[[], T]) -> T:
    results: list[T] = []
    failures: list[BaseException] = []

    def target() -> None:
        try:
            results.append(work())
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if failures:
        raise failures[0]
    return results[0]


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def _order(order_id: int, customer_id: int, email: str) -> dict[str, Any]:
    payload: dict[str, Any] = copy.deepcopy(json.loads(FIXTURE.read_text()))
    payload.update(id=order_id, name=f"#{order_id}", email=email, contact_email=email)
    payload["customer"] = {**payload["customer"], "id": customer_id, "email": email}
    return payload


async def _arrange(settings: Settings) -> tuple[int, int, int]:
    """The merchant's shop: default program, a held referral and a dead-lettered order."""
    state = State.create(settings)
    try:
        async with state.sessionmaker() as session:
            shop, _ = await referral_shop(session, settings)
            shop_id = shop.id
        await rita_has_ordered(state, shop)
        referral = await deliver(
            state,
            shop_id,
            order_payload(
                2009,
                607,
                "Rita.Referrer+2@gmail.com",
                phone="207-555-0100",
                landing_site="/?ref=RITA2345",
                **RITA_ORDER,
            ),
        )
        assert referral is not None
        async with unit_of_work(state.sessionmaker) as session:
            letter = DeadLetter(
                shop_id=shop_id,
                source="shopify",
                topic="orders/paid",
                delivery_id="dl-1",
                headers={},
                body=json.dumps(_order(3003, 7003, "grace@example.com")).encode(),
                error="KeyError: 'line_items' (fixed since)",
            )
            session.add(letter)
            await session.flush()
            return shop_id, referral.id, letter.id
    finally:
        await state.aclose()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Chromium for this module only: Playwright's sync API holds an event loop on the main
    thread while it runs, so it is stopped before the next module's async tests."""
    yield from launched_chromium()


@pytest.fixture(scope="module")
def admin() -> Iterator[Admin]:
    url = f"sqlite:///{_TMP}/admin-browser-{int(time.time() * 1000)}.db"
    _in_thread(lambda: migrate.upgrade(url))
    sock = _free_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = make_settings(url, APP_URL=base)
    shop_id, referral_id, letter_id = _run(_arrange(settings))
    from app.main import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the admin server did not start")
        time.sleep(0.02)
    try:
        yield Admin(base, settings, shop_id, referral_id, letter_id)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _login(chromium: Browser, admin: Admin) -> tuple[Page, list[str], list[str]]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    blocked: list[str] = []
    context.route(
        "https://cdn.shopify.com/**",
        lambda route: (blocked.append(route.request.url), route.abort()),
    )
    page = context.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(10_000)

    async def link() -> str:
        state = State.create(admin.settings)
        try:
            async with state.sessionmaker() as session:
                shop = await session.get(Shop, admin.shop_id)
                assert shop is not None
                return auth.login_link(admin.settings, shop)
        finally:
            await state.aclose()

    page.goto(_run(link()))
    return page, requests, errors


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(
        path=str(ARTIFACTS / f"admin-{name}.png"), animations="disabled", full_page=True
    )


def test_a_merchant_changes_the_rate_and_the_next_order_earns_at_it(
    chromium: Browser,
    admin: Admin,
) -> None:
    from playwright.sync_api import expect

    # given the merchant signed in with a login link, on the home page
    page, requests, errors = _login(chromium, admin)
    expect(page.get_by_role("heading", name="Stamp on Some Shop")).to_be_visible()
    expect(
        page.get_by_role("link", name="Turn on the Stamp app embed in your theme")
    ).to_be_visible()
    # the page is styled by Stamp's own stylesheet (the CDN is unreachable)
    assert page.evaluate("getComputedStyle(document.querySelector('.card')).borderRadius") == "12px"
    _shot(page, "home")

    # when they open the program and type a new rate, the preview follows at once
    page.get_by_role("link", name="Program", exact=True).first.click()
    preview = page.locator("#preview-result")
    expect(preview).to_contain_text("An order of 100.00 USD earns 100 points")
    page.get_by_label("Points per 1 USD").fill("2")
    expect(preview).to_contain_text("An order of 100.00 USD earns 200 points")
    expect(preview).to_contain_text("Gold: 300")
    page.get_by_label("Points per 1 USD").fill("-2")
    expect(preview).to_contain_text("earning.rate: Input should be greater than or equal to 0")
    page.get_by_label("Points per 1 USD").fill("2")
    expect(preview).to_contain_text("earns 200 points")
    _shot(page, "program-preview")

    # and save it
    page.get_by_role("button", name="Save program").click()
    expect(page.locator(".banner--success")).to_have_text("Program saved")
    expect(page.locator("#history")).to_contain_text("earning.rate: 1 → 2")
    expect(page.locator("#history")).to_contain_text("admin:login-link")

    # then a later order (a signed orders/paid webhook) earns at the new rate: 72 × 2
    body, headers = shopify_webhook(
        admin.settings, "orders/paid", _order(4004, 7004, "ada.lovelace@example.com")
    )
    delivered = httpx.post(admin.base + "/webhooks/shopify", content=body, headers=headers)
    assert delivered.status_code == 200
    page.get_by_role("link", name="Members").first.click()
    page.get_by_label("Search by email or name").fill("ada.lovelace")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="#").or_(page.locator("td a")).first.click()
    expect(page.locator("#balance")).to_have_text("144")

    # and adjusting the member adds the points with the reason in the ledger
    page.get_by_label("Points (negative to remove)").fill("-500")
    page.get_by_label("Reason").fill("Typo")
    page.get_by_role("button", name="Adjust").click()
    expect(page.locator("#points-error")).to_have_text("The balance is 144; it cannot go below 0")
    expect(page.locator("#balance")).to_have_text("144")
    page.get_by_label("Points (negative to remove)").fill("56")
    page.get_by_label("Reason").fill("Welcome back gift")
    page.get_by_role("button", name="Adjust").click()
    expect(page.locator(".banner--success")).to_have_text("Points adjusted")
    expect(page.locator("#balance")).to_have_text("200")
    expect(page.get_by_role("cell", name="Welcome back gift")).to_be_visible()
    _shot(page, "member")

    # approve the held referral
    page.get_by_role("link", name="Referrals").first.click()
    row = page.locator(f"#referral-{admin.referral_id}")
    expect(row).to_contain_text("rita.referrer@gmail.com")
    row.get_by_role("button", name="Approve").click()
    expect(page.locator(".banner--success")).to_have_text("Referral approved")
    expect(page.get_by_text("Nothing to review.")).to_be_visible()

    # replay the dead letter: Grace's order is processed, at the new rate too
    page.get_by_role("link", name="Dead letters").first.click()
    page.locator(f"#dead-letter-{admin.letter_id}").get_by_role("button", name="Replay").click()
    expect(page.locator(".banner--success")).to_have_text("Replayed: the delivery was processed")
    expect(page.get_by_text("No dead letters")).to_be_visible()
    page.get_by_role("link", name="Members").first.click()
    page.get_by_label("Search by email or name").fill("grace@")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("tbody tr").first).to_contain_text("144")
    _shot(page, "members")

    assert errors == []
    off_machine = [u for u in requests if urlsplit(u).hostname != "127.0.0.1"]
    assert off_machine == []
    page.context.close()


def test_inside_shopify_forms_go_as_fetches_with_the_session_token(
    chromium: Browser, admin: Admin
) -> None:
    """Embedded: App Bridge (stood in for here; the CDN is blocked) hands out session
    tokens, the page's script sends the form with `Authorization: Bearer`, and the answer
    replaces the page. No cookie is involved."""
    from playwright.sync_api import expect

    from tests.shops.support import session_token

    token = session_token(admin.settings, "some-shop.myshopify.com", lifetime=300)
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.route("https://cdn.shopify.com/**", lambda route: route.abort())
    context.add_init_script(
        "window.__toasts = [];"
        f"window.shopify = {{ idToken: async () => '{token}',"
        " toast: { show: (message) => window.__toasts.push(message) } };"
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    authorised: list[str] = []
    page.on(
        "request",
        lambda request: (
            authorised.append(request.method + " " + urlsplit(request.url).path)
            if request.headers.get("authorization") == f"Bearer {token}"
            else None
        ),
    )
    query = f"shop=some-shop.myshopify.com&host=aG9zdA&embedded=1&id_token={token}"

    page.goto(f"{admin.base}/admin/program?{query}")
    page.get_by_label("Points per 1 USD").fill("3")
    expect(page.locator("#preview-result")).to_contain_text("earns 300 points")
    page.get_by_role("button", name="Save program").click()

    expect(page.locator(".banner--success")).to_have_text("Program saved")
    expect(page.locator("#history")).to_contain_text("earning.rate: 2 → 3")
    expect(page.locator("#history")).to_contain_text("admin:shopify-user:42")
    assert page.evaluate("window.__toasts") == ["Program saved"]
    assert "POST /admin/program/preview" in authorised
    assert "POST /admin/program" in authorised
    assert context.cookies() == []
    context.close()
