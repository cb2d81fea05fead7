"""The app proxy: Shopify's signature, the widget's JSON, and the Liquid rewards page."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.integrations.shopify.signing import app_proxy_signature
from app.ledger import service as ledger
from app.models import Member, Shop
from app.program.service import ensure_default_program
from app.settings import Settings
from tests.builders import all_stored_text, create_member, create_shop, row_counts
from tests.rewards.test_redemptions import CREATED, GRAPHQL


def signed(
    settings: Settings,
    path: str,
    customer_id: str = "207119551",
    *,
    shop: str = "some-shop.myshopify.com",
    timestamp: int | None = None,
    extra: dict[str, str] | None = None,
) -> str:
    """A URL exactly as Shopify's app proxy forwards it (signature over every parameter)."""
    params: dict[str, str] = {
        "shop": shop,
        "logged_in_customer_id": customer_id,
        "path_prefix": "/apps/stamp",
        "timestamp": str(timestamp or int(time.time())),
        **(extra or {}),
    }
    params["signature"] = app_proxy_signature(settings.shopify_api_secret, params.items())
    return f"/proxy/{path}?{urlencode(params)}"


async def arrange(session: AsyncSession, settings: Settings, **member: Any) -> Shop:
    shop = await create_shop(session, settings)
    await ensure_default_program(session, shop)
    values = {
        "customer_id": "207119551",
        "email": "p@example.com",
        "first_name": "Pia",
        "referral_code": "PIA23456",
        "tier_name": "Bronze",
        "is_account": True,
    }
    created = await create_member(session, shop, **{**values, **member})
    await ledger.post(session, shop.id, ledger.Posting(created.id, 620, "earn", "order:1:earn"))
    await session.commit()
    return shop


async def test_state_for_a_signed_in_member(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await arrange(session, settings)

    response = await client.get(signed(settings, "api/state", extra={"locale": "fr"}))

    assert response.status_code == 200
    assert response.headers["cache-control"] == "private, no-store"
    body = response.json()
    assert body["member"] == {
        "customer_id": "207119551",
        "first_name": "Pia",
        "points_balance": 620,
        "pending_points": 0,
        "lifetime_points": 620,
        "tier": {
            "name": "Bronze",
            "multiplier": "1",
            "next": {"name": "Silver", "points_needed": 0, "threshold": 500},
        },
        "referral_url": "https://some-shop.myshopify.com/apps/stamp/r/PIA23456",
    }
    assert body["rewards"] == [
        {
            "id": "amount-off",
            "name": "5 USD off",
            "points_cost": 500,
            "affordable": True,
            "locked_reason": None,
        }
    ]
    assert body["ways_to_earn"][:2] == [
        {"title": "Place an order", "description": "1 points per 1 USD spent"},
        {"title": "Create an account", "description": "100 points"},
    ]
    assert body["shop"]["locale"] == "fr"


async def test_guest_gets_the_program_but_no_member(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await arrange(session, settings)
    before = await row_counts(session)

    response = await client.get(signed(settings, "api/state", customer_id=""))

    assert response.status_code == 200
    assert response.json()["member"] is None
    assert response.json()["rewards"][0]["affordable"] is False
    assert response.json()["urls"]["login"] == "https://some-shop.myshopify.com/account/login"
    assert await row_counts(session) == before


@pytest.mark.parametrize("tamper", ["forged", "stale", "future", "missing", "other_customer"])
async def test_forged_or_stale_signatures_are_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, tamper: str
) -> None:
    await arrange(session, settings)
    url = signed(settings, "api/state")
    if tamper == "forged":
        url = url.replace("signature=", "signature=0")
    elif tamper == "stale":
        url = signed(settings, "api/state", timestamp=int(time.time()) - 660)
    elif tamper == "future":
        url = signed(settings, "api/state", timestamp=int(time.time()) + 660)
    elif tamper == "missing":
        url = url.split("&signature=")[0]
    else:  # a shopper edits the customer id after Shopify signed the request
        url = url.replace("logged_in_customer_id=207119551", "logged_in_customer_id=1")
    before = await row_counts(session)

    response = await client.get(url)

    assert response.status_code == 401
    assert await row_counts(session) == before


async def test_customer_id_of_another_shop_gets_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given the customer is a member of another shop only
    other = await create_shop(session, settings, domain="other-shop.myshopify.com")
    await create_member(session, other, customer_id="555", email="x@example.com")
    mine = await create_shop(session, settings)
    await ensure_default_program(session, mine)
    await session.commit()

    response = await client.get(signed(settings, "api/state", customer_id="555"))

    assert response.status_code == 200
    assert response.json()["member"]["points_balance"] == 0
    await session.rollback()
    theirs = (await session.execute(select(Member).where(Member.shop_id == other.id))).scalar_one()
    assert theirs.points_balance == 0


async def test_unknown_shop_is_refused(client: httpx.AsyncClient, settings: Settings) -> None:
    response = await client.get(signed(settings, "api/state", shop="nobody.myshopify.com"))
    assert response.status_code == 401


@respx.mock
async def test_redeem_from_the_widget_and_see_the_code_in_history(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await arrange(session, settings)
    respx.post(GRAPHQL).mock(return_value=httpx.Response(200, json=CREATED))

    response = await client.post(
        signed(settings, "api/redeem"), json={"reward_id": "amount-off", "request_id": "click-0001"}
    )
    repeat = await client.post(
        signed(settings, "api/redeem"), json={"reward_id": "amount-off", "request_id": "click-0001"}
    )
    history = await client.get(signed(settings, "api/history"))

    assert response.status_code == 200
    assert (response.json()["points_spent"], response.json()["points_balance"]) == (500, 120)
    assert repeat.json()["code"] == response.json()["code"]
    assert respx.calls.call_count == 1
    assert [(e["points"], e["kind"], e["code"]) for e in history.json()["data"]] == [
        (-500, "redeem", response.json()["code"]),
        (620, "earn", None),
    ]


async def test_guest_cannot_redeem_and_nothing_changes(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await arrange(session, settings)
    before = await row_counts(session)

    response = await client.post(
        signed(settings, "api/redeem", customer_id=""),
        json={"reward_id": "amount-off", "request_id": "click-0001"},
    )

    assert (response.status_code, response.json()["error"]["code"]) == (401, "not_signed_in")
    assert await row_counts(session) == before


async def test_export_and_leave_the_program(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await arrange(session, settings, last_name="Quist", phone="+4790000000")

    export = await client.get(signed(settings, "api/export"))
    refused = await client.post(signed(settings, "api/leave"), json={"confirm": False})
    left = await client.post(signed(settings, "api/leave"), json={"confirm": True})

    assert export.status_code == 200
    assert "attachment" in export.headers["content-disposition"]
    assert export.json()["members"][0]["email"] == "p@example.com"
    assert refused.status_code == 400
    assert left.json() == {"left": True}
    stored = await all_stored_text(session)
    for personal in ("p@example.com", "quist", "4790000000"):
        assert personal not in stored


async def test_rewards_page_is_liquid_and_neutralises_liquid_in_names(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given a member whose name is Liquid (and HTML) that must not run
    await arrange(session, settings, first_name="{{ shop.name }}{% raw %}<b>x</b>")
    shop = (await session.execute(select(Shop))).scalar_one()
    shop.name = "Shop {% if true %}"
    await session.commit()

    response = await client.get(signed(settings, "rewards"))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/liquid")
    page = response.text
    assert page.startswith("{% layout none %}")
    assert "{{ shop.name }}" not in page
    assert "{% raw %}" not in page
    assert "{% if true %}" not in page
    assert "<b>x</b>" not in page
    assert (
        "&#123;&#123; shop.name &#125;&#125;&#123;&#37; raw &#37;&#125;&lt;b&gt;x&lt;/b&gt;" in page
    )
    assert page.count("{%") == 1  # only the layout tag Stamp itself wrote
