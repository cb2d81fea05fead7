"""A referral from share to spendable points, over HTTP against the real app.

Rita shares her link (the widget shows it), her friend Fay clicks it on her phone (signed,
anonymous app-proxy request) and gets a welcome code, buys two days later on her laptop
(another browser, no cookie: only the welcome code rides on the order), the return window
passes, and Rita's points become spendable. Shopify's Admin API is mocked with respx.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import unit_of_work
from app.ledger.periodic import release_due
from app.models import Shop
from app.models.base import utcnow
from app.models.referral import ReferralOffer
from app.settings import Settings
from app.state import State
from tests.builders import api_key_for, shopify_webhook
from tests.proxy.test_routes import signed
from tests.referrals.conftest import ledger_rows, no_drift, order_payload, referral_shop
from tests.rewards.test_redemptions import CREATED, GRAPHQL

WEBHOOKS = "/webhooks/shopify"
TWO_DAYS_LATER = (utcnow() + timedelta(days=2)).isoformat()


async def post_order(
    client: httpx.AsyncClient, settings: Settings, topic: str, payload: dict[str, Any]
) -> httpx.Response:
    body, headers = shopify_webhook(settings, topic, payload)  # a fresh delivery id each time
    response = await client.post(WEBHOOKS, content=body, headers=headers)
    assert response.status_code == 200, response.text
    return response


async def rita_view(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/api/v1/members/500", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def rita_referrals(client: httpx.AsyncClient, headers: dict[str, str]) -> list[Any]:
    response = await client.get("/api/v1/members/500/referrals", headers=headers)
    assert response.status_code == 200, response.text
    return [(r["status"], r["method"], r["order_id"]) for r in response.json()["data"]]


@respx.mock
async def test_share_click_buy_later_elsewhere_window_passes_points_spendable(
    client: httpx.AsyncClient, state: State, session: AsyncSession, settings: Settings
) -> None:
    # given a shop paying the referrer 750 points and the friend a 15% welcome code
    shop, _ = await referral_shop(
        session, settings, referrer_points=750, friend_discount_value=Decimal(15)
    )
    headers = await api_key_for(session, shop)
    shopify = respx.post(GRAPHQL).mock(return_value=httpx.Response(200, json=CREATED))

    # the referrer sees her link and the offer in her widget (and in the member API)
    widget = await client.get(signed(settings, "api/state", customer_id="500"))
    assert widget.status_code == 200, widget.text
    link = widget.json()["member"]["referral_url"]
    assert link == "https://some-shop.myshopify.com/apps/stamp/r/RITA2345"
    assert (await rita_view(client, headers))["referral_url"] == link
    assert {"title": "Refer a friend", "description": "750 points"} in widget.json()["ways_to_earn"]
    code = urlsplit(link).path.rsplit("/", 1)[1]

    # when the friend opens it on her phone (anonymous, signed by the app proxy)
    phone = {"X-Forwarded-For": "198.51.100.44", "User-Agent": "Mozilla/5.0 (iPhone)"}
    click = signed(settings, f"r/{code}", customer_id="", extra={"device": "fay-phone-1"})
    landed = await client.get(click, headers=phone)
    again = await client.get(click, headers=phone)  # she taps the link twice

    # then she is sent to the storefront with one single-use welcome code applied
    assert landed.status_code == again.status_code == 302
    location = landed.headers["location"]
    assert location == again.headers["location"]
    assert location.startswith("/discount/FRIEND-")
    assert location.endswith("?redirect=%2F%3Fref%3DRITA2345")
    welcome = location.split("/")[2].split("?")[0]
    assert shopify.call_count == 1  # created once
    sent = json.loads(shopify.calls[0].request.content)
    discount = sent["variables"]["input"]
    assert discount["code"] == welcome
    assert discount["usageLimit"] == 1
    assert discount["customerGets"]["value"] == {"percentage": 0.15}

    # when she buys two days later on her laptop: another IP and browser, no ref cookie,
    # only the welcome code on the order
    payload = order_payload(
        4001,
        901,
        "fay.friend@example.com",
        ip="192.0.2.77",
        user_agent="Mozilla/5.0 (Laptop)",
        codes=(welcome,),
        created_at=TWO_DAYS_LATER,
    )
    await post_order(client, settings, "orders/paid", payload)
    # and Shopify delivers the same order again under a new delivery id
    await post_order(client, settings, "orders/paid", payload)

    # then Rita's 750 points are pending, once, and the referral is attributed by the code
    assert await rita_referrals(client, headers) == [("qualified", "discount_code", "4001")]
    view = await rita_view(client, headers)
    assert (view["points_balance"], view["pending_points"]) == (0, 750)
    referral_rows = [r for r in await ledger_rows(session) if r[1] == "referral"]
    assert [(r[2], r[3]) for r in referral_rows] == [(750, "pending")]

    # when the 14-day return window passes and the release job runs
    async with unit_of_work(state.sessionmaker) as work:
        stored = await work.get(Shop, shop.id)
        assert stored is not None
        assert await release_due(work, stored, utcnow() + timedelta(days=15)) >= 1

    # then the points are spendable and the referral is complete
    view = await rita_view(client, headers)
    assert (view["points_balance"], view["pending_points"]) == (750, 0)
    assert await rita_referrals(client, headers) == [("completed", "discount_code", "4001")]
    offers = (await session.execute(select(ReferralOffer))).scalars().all()
    assert [(o.code, o.status) for o in offers] == [(welcome, "issued")]
    assert shopify.call_count == 1
    await no_drift(session)


@respx.mock
async def test_cancelled_inside_the_window_cancels_the_reward_and_redelivery_pays_nothing(
    client: httpx.AsyncClient, state: State, session: AsyncSession, settings: Settings
) -> None:
    # given Fay bought with Rita's cart attribute (the widget set it) and Rita is pending
    shop, _ = await referral_shop(session, settings)
    headers = await api_key_for(session, shop)
    payload = order_payload(
        4002,
        902,
        "fay@example.com",
        attributes={"stamp_ref": "RITA2345"},
        created_at=TWO_DAYS_LATER,
    )
    await post_order(client, settings, "orders/paid", payload)
    assert (await rita_view(client, headers))["pending_points"] == 500

    # when the order is cancelled inside the window
    cancelled = {**payload, "cancelled_at": utcnow().isoformat(), "cancel_reason": "customer"}
    await post_order(client, settings, "orders/cancelled", cancelled)

    # then the pending reward is cancelled and never released
    assert await rita_referrals(client, headers) == [("cancelled", "cart_attribute", "4002")]
    # and a late redelivery of the paid webhook pays nothing
    await post_order(client, settings, "orders/paid", payload)
    async with unit_of_work(state.sessionmaker) as work:
        stored = await work.get(Shop, shop.id)
        assert stored is not None
        await release_due(work, stored, utcnow() + timedelta(days=15))
    view = await rita_view(client, headers)
    assert (view["points_balance"], view["pending_points"]) == (0, 0)
    assert await rita_referrals(client, headers) == [("cancelled", "cart_attribute", "4002")]
    assert [r[2:4] for r in await ledger_rows(session) if r[1] == "referral"] == [
        (500, "cancelled")
    ]
    await no_drift(session)
