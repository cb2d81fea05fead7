"""Tenancy: shop A's session token or login cookie never reaches shop B's data, on every
page and JSON endpoint, whatever ids are put in the URL."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import unit_of_work
from app.integrations.mailchimp import service as mailchimp
from app.integrations.segment import service as segment
from app.ledger import service as ledger
from app.models import (
    ConnectorConnection,
    DeadLetter,
    OutgoingDelivery,
    Referral,
    Shop,
    WebhookSubscription,
)
from app.program.service import ensure_default_program
from app.queue import huey
from app.settings import Settings
from app.state import State
from tests.admin.support import HOOK, OTHER, bearer, sign_in, subscription_with_delivery
from tests.builders import create_member, create_shop, row_counts

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "shopify" / "orders_paid.json"


async def two_shops(session: AsyncSession, settings: Settings) -> tuple[Shop, Shop, dict[str, int]]:
    """Shop A (empty) and shop B with a member, a held referral and a dead letter."""
    a = await create_shop(session, settings)
    b = await create_shop(session, settings, domain=OTHER)
    for shop in (a, b):
        await ensure_default_program(session, shop)
    bea = await create_member(
        session, b, customer_id="9", email="bea@other.example", first_name="Bea"
    )
    friend = await create_member(session, b, customer_id="10", email="fred@other.example")
    await ledger.post(session, b.id, ledger.Posting(bea.id, 900, "earn", "o:1"))
    referral = Referral(
        shop_id=b.id,
        referrer_member_id=bea.id,
        friend_member_id=friend.id,
        order_id="1",
        code="BEA",
        method="link",
        status="held",
        order_amount=Decimal(100),
        currency="USD",
    )
    letter = DeadLetter(
        shop_id=b.id,
        source="shopify",
        topic="orders/paid",
        delivery_id="x",
        headers={},
        body=json.dumps(json.loads(FIXTURE.read_text())).encode(),
        error="boom",
    )
    session.add_all([referral, letter])
    await session.commit()
    return a, b, {"member": bea.id, "referral": referral.id, "letter": letter.id}


def b_leaks(text: str) -> list[str]:
    return [
        s for s in ("bea@other.example", "fred@other.example", "Bea", "boom", "900") if s in text
    ]


async def test_every_page_with_shop_a_auth_shows_none_of_shop_b(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    a, _, ids = await two_shops(session, settings)
    headers = bearer(settings, a)
    pages = [
        "/admin",
        "/admin/program",
        "/admin/members",
        "/admin/members?q=bea",
        "/admin/referrals",
        "/admin/dead-letters",
        "/admin/import",
        "/admin/integrations",
        *(f"/admin/export/{t}.csv" for t in ("summary", "customers", "winback", "daily")),
    ]
    for path in pages:
        response = await client.get(path, headers=headers)
        assert response.status_code == 200, path
        assert b_leaks(response.text) == [], path
    member = await client.get(f"/admin/members/{ids['member']}", headers=headers)
    assert member.status_code == 404
    assert b_leaks(member.text) == []


async def test_every_write_with_shop_b_ids_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    a, _, ids = await two_shops(session, settings)
    csrf = await sign_in(client, settings, a)
    before = await row_counts(session)
    writes = [
        (f"/admin/members/{ids['member']}/adjust", {"points": "-900", "reason": "steal"}),
        (f"/admin/referrals/{ids['referral']}/approve", {}),
        (f"/admin/referrals/{ids['referral']}/reject", {}),
        (f"/admin/dead-letters/{ids['letter']}/replay", {}),
    ]
    for path, form in writes:
        response = await client.post(path, data={**form, "csrf_token": csrf})
        assert response.status_code == 404, path
        assert b_leaks(response.text) == [], path
    assert await row_counts(session) == before


async def test_the_preview_json_uses_only_the_signed_in_shop(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    a, b, _ = await two_shops(session, settings)
    # shop B's session token cannot be steered to shop A by a parameter
    response = await client.post(
        "/admin/program/preview?shop=some-shop.myshopify.com",
        data={"earning.rate": "2", "preview_amount": "10"},
        headers=bearer(settings, b),
    )
    assert response.status_code == 200
    assert response.json()["currency"] == "USD"
    unauthenticated = await client.post("/admin/program/preview", data={"preview_amount": "1"})
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]["code"] == "not_signed_in"


async def test_shop_b_subscriptions_deliveries_and_connections_are_out_of_shop_a_reach(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, state: State
) -> None:
    a, b, _ = await two_shops(session, settings)
    subscription_id, delivery_id = await subscription_with_delivery(session, state, b)
    async with unit_of_work(state.sessionmaker) as uow:
        await mailchimp.save(
            uow, state.cipher, b, "0123456789abcdef0123456789abcdef-us6", "b-audience"
        )
        await segment.connect(uow, state.cipher, settings, b, {}, shared_secret="b" * 32)
    huey.flush()
    csrf = await sign_in(client, settings, a)
    before = await row_counts(session)
    hooks = f"/admin/integrations/webhooks/{subscription_id}"

    page = await client.get("/admin/integrations")
    log = await client.get(hooks)
    writes = [
        await client.post(f"{hooks}/{action}", data={"csrf_token": csrf})
        for action in ("delete", "enable", f"deliveries/{delivery_id}/replay")
    ]
    disconnects = [
        await client.post(f"/admin/integrations/{kind}/disconnect", data={"csrf_token": csrf})
        for kind in ("mailchimp", "segment")
    ]

    assert HOOK not in page.text
    assert "b-audience" not in page.text
    assert log.status_code == 404
    assert [w.status_code for w in writes] == [404, 404, 404]
    assert [d.status_code for d in disconnects] == [303, 303]
    assert await row_counts(session) == before
    await session.rollback()
    statuses = await session.execute(
        select(ConnectorConnection.kind, ConnectorConnection.status).order_by(
            ConnectorConnection.kind
        )
    )
    assert list(statuses) == [("mailchimp", "connected"), ("segment", "connected")]
    assert list(await session.execute(select(WebhookSubscription.status))) == [("active",)]
    assert list(await session.execute(select(OutgoingDelivery.status))) == [("failed",)]
