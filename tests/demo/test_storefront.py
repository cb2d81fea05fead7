"""The demo storefront shows the chosen shopper, and a demo order earns through the pipeline."""

from __future__ import annotations

import re
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.demo import DEMO_HEADER
from app.demo.seed import SeedResult
from app.models import Order, ProgramVersion, Shop, WebhookDelivery
from tests.builders import row_counts
from tests.demo.conftest import member_by_email


def balance_shown(html: str) -> int:
    match = re.search(r'id="points-balance">(-?\d+)<', html)
    assert match, "no balance on the page"
    return int(match.group(1))


async def test_storefront_renders_the_chosen_members_points(
    seeded: SeedResult, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    grace = await member_by_email(session, "grace@demo.example")

    response = await client.get("/demo", params={"customer": str(grace.id)})

    assert response.status_code == 200
    assert response.headers[DEMO_HEADER]
    html = response.text
    assert "Demo storefront — local stand-in, not a real Shopify store" in html
    assert balance_shown(html) == 1553
    assert 'id="tier-name">Gold<' in html
    assert "Top tier reached." in html
    assert f"https://stamp-demo.myshopify.com/apps/stamp/r/{grace.referral_code}" in html
    # recent activity, newest first: the refund's reversal of 175 points
    assert re.search(r"Reversal.*?Refund: order #1006.*?-175", html, re.S)
    assert f'<option value="{grace.id}" selected>Grace Hopper (account)</option>' in html


async def test_storefront_shows_tier_progress(
    seeded: SeedResult, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    alan = await member_by_email(session, "alan@demo.example")

    html = (await client.get("/demo", params={"customer": str(alan.id)})).text

    assert balance_shown(html) == 263
    assert "237 points to Silver" in html
    # 263 of the 0..500 Bronze-to-Silver span
    assert 'value="52"' in html


async def test_storefront_escapes_what_shoppers_typed(
    one_shopper: None, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    member = await member_by_email(session, "ada@demo.example")
    member.first_name = "<script>alert(1)</script>"
    await session.commit()

    html = (await client.get("/demo", params={"customer": str(member.id)})).text

    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


async def test_storefront_before_seeding_says_how_to_start(client: httpx.AsyncClient) -> None:
    response = await client.get("/demo")
    assert response.status_code == 503
    assert "stamp demo" in response.text


@pytest.mark.parametrize(
    ("email", "amount", "earned"),
    [
        ("ada@demo.example", "40.00", 50),  # Silver: floor(40.00 x 1.25) = 50
        ("alan@demo.example", "42.99", 42),  # Bronze: floor(42.99) = 42
        ("grace@demo.example", "10.01", 15),  # Gold: floor(10.01 x 1.5) = floor(15.015)
        ("rosalind@demo.example", "10.50", 10),  # guest, no customer record
    ],
)
async def test_a_demo_order_raises_the_balance_by_the_exact_points(
    email: str,
    amount: str,
    earned: int,
    seeded: SeedResult,
    client: httpx.AsyncClient,
    session: AsyncSession,
) -> None:
    member = await member_by_email(session, email)
    before = member.points_balance
    deliveries = await session.scalar(select(func.count()).select_from(WebhookDelivery))

    response = await client.post(
        "/demo/orders", data={"customer": str(member.id), "amount": amount}
    )

    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    query = parse_qs(location.query)
    assert location.path == "/demo"
    assert query["customer"] == [str(member.id)]
    assert (await member_by_email(session, email)).points_balance == before + earned
    # it came in as one more signed webhook delivery, an orders/paid
    assert await session.scalar(select(func.count()).select_from(WebhookDelivery)) == (
        (deliveries or 0) + 1
    )
    order = (
        await session.execute(select(Order).where(Order.order_id == query["placed"][0]))
    ).scalar_one()
    assert (order.merchandise_amount, order.points_earned) == (Decimal(amount), earned)
    page = (await client.get(response.headers["location"])).text
    assert balance_shown(page) == before + earned
    assert f"earned {earned} points" in page


@pytest.mark.parametrize("amount", ["0", "-5", "abc", "1.005", "100000.01", ""])
async def test_a_bad_amount_places_nothing(
    amount: str, one_shopper: None, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    ada_id = (await member_by_email(session, "ada@demo.example")).id
    before = await row_counts(session)

    response = await client.post("/demo/orders", data={"customer": str(ada_id), "amount": amount})

    assert response.status_code == 303
    assert "error=amount" in response.headers["location"]
    assert await row_counts(session) == before
    page = (await client.get(response.headers["location"])).text
    assert "Enter an amount between 0.01 and 100000" in page


async def test_an_unknown_shopper_places_nothing(
    one_shopper: None, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    before = await row_counts(session)
    response = await client.post("/demo/orders", data={"customer": "999999", "amount": "5"})
    assert response.status_code == 303
    assert "error=customer" in response.headers["location"]
    assert await row_counts(session) == before


async def test_a_cross_site_form_post_is_refused(
    one_shopper: None, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    ada_id = (await member_by_email(session, "ada@demo.example")).id
    before = await row_counts(session)
    response = await client.post(
        "/demo/orders",
        data={"customer": str(ada_id), "amount": "5"},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert await row_counts(session) == before


async def test_the_admin_link_opens_the_admin_as_the_demo_merchant(
    seeded: SeedResult, client: httpx.AsyncClient
) -> None:
    response = await client.get("/demo/admin")
    assert response.status_code == 302
    assert response.headers["location"].startswith("https://stamp.test/admin/login?token=")

    login = await client.get(response.headers["location"])
    admin = await client.get(login.headers["location"])

    assert login.status_code == 303
    assert admin.status_code == 200
    assert "Stamp Demo Store" in admin.text


async def test_the_admin_link_installs_a_fresh_demo_shop_through_the_stand_in(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    # No seed: the admin's token exchange and shop query go to the Admin API stand-in.
    response = await client.get("/demo/admin")
    login = await client.get(response.headers["location"])
    admin = await client.get(login.headers["location"])

    assert admin.status_code == 200
    assert "Stamp Demo Store" in admin.text
    await session.rollback()
    shop = (await session.execute(select(Shop))).scalar_one()
    assert (shop.domain, shop.name, shop.currency, shop.status) == (
        "stamp-demo.myshopify.com",
        "Stamp Demo Store",
        "USD",
        "installed",
    )
    assert shop.access_token_enc is not None
    assert await session.scalar(select(func.count()).select_from(ProgramVersion)) == 1


async def test_a_session_token_for_admin_fetches(client: httpx.AsyncClient) -> None:
    from app.integrations.shopify.signing import decode_session_token

    response = await client.post("/demo/session-token")

    assert response.status_code == 200
    token = response.json()["token"]
    decoded = decode_session_token(
        token, "test-api-key", "test-shopify-secret-0123456789abcdef0123"
    )
    assert decoded.shop == "stamp-demo.myshopify.com"


async def test_the_storefront_runs_the_real_widget_through_a_signed_app_proxy(
    seeded: SeedResult, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    # given the storefront page for Grace (which also signs her in to the demo proxy)
    grace = await member_by_email(session, "grace@demo.example")
    page = await client.get("/demo", params={"customer": str(grace.id)})
    assert '<script src="/widgets/static/stamp-loader.js" defer' in page.text
    assert 'data-api="/demo/apps/stamp"' in page.text

    # when the widget asks the (stand-in) app proxy for its state
    state = await client.get("/demo/apps/stamp/api/state", params={"locale": "en"})
    client.cookies.clear()
    guest = await client.get("/demo/apps/stamp/api/state")

    # then the real proxy answers with Grace's points, and a visitor without login is a guest
    assert state.status_code == 200
    assert (state.json()["member"]["points_balance"], state.json()["member"]["tier"]["name"]) == (
        1553,
        "Gold",
    )
    assert guest.json()["member"] is None
    loader = await client.get("/widgets/static/stamp-loader.js")
    assert loader.status_code == 200
    assert loader.headers["cache-control"] == "public, max-age=3600"
