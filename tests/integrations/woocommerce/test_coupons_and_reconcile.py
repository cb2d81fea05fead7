"""Redeeming as WooCommerce coupons (with compensation), and the polling reconcile."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import unit_of_work
from app.integrations.woocommerce import coupons, reconcile
from app.ledger import engine
from app.models import Member, Redemption, Shop
from app.rewards import service as rewards
from app.settings import Settings
from app.state import State
from tests.integrations.woocommerce.support import create_woo_shop, order, signed

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


async def earned_member(client: httpx.AsyncClient, shop: Shop, points_orders: int = 7) -> None:
    """Customer 12 earns 72 points per order, over `points_orders` orders (504 by default)."""
    for index in range(points_orders):
        body, headers = signed(order(order_id=1000 + index), "order.created")
        response = await client.post(
            f"/webhooks/woocommerce/{shop.id}", content=body, headers=headers
        )
        assert response.json() == {"result": "processed"}


async def redeem(state: State, shop: Shop, store: respx.MockRouter) -> Redemption:
    """What `rewards.issue` does for a WooCommerce shop (the dispatch in the report)."""
    async with unit_of_work(state.sessionmaker) as session:
        member = (await session.execute(select(Member))).scalar_one()
        started = await rewards.start(
            session, shop, member, "amount-off", request_key="k-1", request_sha256="0" * 64
        )
    async with state.sessionmaker() as session:
        redemption = await session.get(Redemption, started.id)
        member = await session.get(Member, started.member_id)
        current = await session.get(Shop, shop.id)
    assert redemption is not None
    assert member is not None
    assert current is not None
    coupon_id, error = await coupons.issue_coupon(state, current, redemption, member, None)
    return await rewards.finish(state, started.id, coupon_id, error)


async def points(session: AsyncSession) -> int:
    await session.rollback()
    return int((await session.execute(select(Member.points_balance))).scalar_one())


async def test_redemption_creates_a_single_use_coupon_for_the_shopper(
    client: httpx.AsyncClient,
    state: State,
    session: AsyncSession,
    settings: Settings,
    store: respx.MockRouter,
) -> None:
    # given a member with 504 points and the default 500-point "5 EUR off" reward
    shop = await create_woo_shop(session, settings)
    await earned_member(client, shop)
    create = store.post("/coupons").respond(201, json={"id": 512, "code": "stamp-x"})

    # when they redeem
    issued = await redeem(state, shop, store)

    # then a fixed_cart coupon, usable once, by their email only, was created
    sent = json.loads(create.calls[0].request.content)
    assert sent["code"] == issued.code
    assert {
        k: sent[k] for k in ("discount_type", "amount", "usage_limit", "email_restrictions")
    } == {
        "discount_type": "fixed_cart",
        "amount": "5",
        "usage_limit": 1,
        "email_restrictions": ["jo.buyer@example.com"],
    }
    assert (issued.status, issued.platform_discount_id) == ("issued", "512")
    assert await points(session) == 4
    assert await engine.verify(session) == []


async def test_a_refused_coupon_gives_the_points_back(
    client: httpx.AsyncClient,
    state: State,
    session: AsyncSession,
    settings: Settings,
    store: respx.MockRouter,
) -> None:
    shop = await create_woo_shop(session, settings)
    await earned_member(client, shop)
    store.post("/coupons").respond(500, json={"code": "internal_server_error"})
    lookup = store.get("/coupons").respond(200, json=[])

    with pytest.raises(rewards.RedemptionFailed):
        await redeem(state, shop, store)

    assert lookup.call_count == 1
    assert await points(session) == 504
    await session.rollback()
    assert (await session.execute(select(Redemption.status))).scalar_one() == "failed"
    assert await engine.verify(session) == []


async def test_a_lost_answer_finds_the_coupon_that_landed(
    client: httpx.AsyncClient,
    state: State,
    session: AsyncSession,
    settings: Settings,
    store: respx.MockRouter,
) -> None:
    shop = await create_woo_shop(session, settings)
    await earned_member(client, shop)
    store.post("/coupons").mock(side_effect=httpx.ReadTimeout("lost"))

    def found(request: httpx.Request) -> httpx.Response:
        code = request.url.params["code"]
        return httpx.Response(200, json=[{"id": 513, "code": code.lower()}])

    store.get("/coupons").mock(side_effect=found)

    issued = await redeem(state, shop, store)

    assert (issued.status, issued.platform_discount_id) == ("issued", "513")
    assert await points(session) == 4


async def test_reconcile_recovers_an_order_whose_webhook_never_came(
    state: State, session: AsyncSession, settings: Settings, store: respx.MockRouter
) -> None:
    # given a store whose order 2001 was never delivered, and a webhook WooCommerce disabled
    shop = await create_woo_shop(session, settings)
    url = f"https://stamp.test/webhooks/woocommerce/{shop.id}"
    store.get("/webhooks").respond(
        200,
        json=[
            {"id": 40 + i, "topic": topic, "delivery_url": url, "status": status}
            for i, (topic, status) in enumerate(
                [
                    ("order.created", "active"),
                    ("order.updated", "disabled"),
                    ("order.deleted", "active"),
                    ("order.restored", "active"),
                    ("customer.created", "active"),
                ]
            )
        ],
    )
    revive = store.put("/webhooks/41").respond(200, json={"id": 41, "status": "active"})
    orders = store.get("/orders").respond(200, json=[order(order_id=2001, status="completed")])

    # when the reconcile runs (twice: the second run finds the same order again)
    first = await reconcile.reconcile_shop(state, shop.id, NOW.replace(hour=6))
    await reconcile.reconcile_shop(state, shop.id, NOW.replace(hour=6))

    # then the order earned once, the disabled webhook is active again
    assert (first.orders_seen, first.orders_failed, first.webhooks_reactivated) == (
        1,
        0,
        ("order.updated",),
    )
    assert json.loads(revive.calls[0].request.content) == {"status": "active"}
    assert dict(orders.calls[0].request.url.params) == {
        "modified_after": "2026-03-02T06:00:00",
        "dates_are_gmt": "true",
        "orderby": "modified",
        "order": "asc",
        "per_page": "50",
        "page": "1",
    }
    assert await points(session) == 72
    assert await engine.verify(session) == []
