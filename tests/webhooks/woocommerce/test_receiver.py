"""WooCommerce webhook intake: signature, ping, earning and reversing from the order's state."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.ledger import engine
from app.models import LedgerEntry, Member, Shop, WebhookDelivery
from app.program.config import EarningTrigger
from app.program.service import current_config, save_program
from app.settings import Settings
from tests.builders import row_counts
from tests.integrations.woocommerce.support import create_woo_shop, order, signed


def url(shop: Shop) -> str:
    return f"/webhooks/woocommerce/{shop.id}"


async def post(client: httpx.AsyncClient, shop: Shop, payload: Any, topic: str) -> httpx.Response:
    body, headers = signed(payload, topic)
    return await client.post(url(shop), content=body, headers=headers)


async def balance(session: AsyncSession, shop: Shop) -> dict[str, int]:
    """Each member's balance, keyed by customer id (or email for a guest)."""
    await session.rollback()
    rows = await session.execute(
        select(Member.customer_id, Member.email, Member.points_balance).where(
            Member.shop_id == shop.id
        )
    )
    return {(row.customer_id or row.email or "?"): row.points_balance for row in rows}


async def no_drift(session: AsyncSession) -> None:
    await session.rollback()
    assert await engine.verify(session) == []


async def test_forged_signature_is_refused_and_writes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given a connected store and an order signed with another secret
    shop = await create_woo_shop(session, settings)
    body, headers = signed(order(), "order.updated", secret="not-the-shop-secret")
    before = await row_counts(session)

    # when it is posted
    response = await client.post(url(shop), content=body, headers=headers)

    # then 401 and no row changed
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    assert await row_counts(session) == before


async def test_unsigned_order_and_unknown_shop_are_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_woo_shop(session, settings)
    body, headers = signed(order(), "order.updated")
    before = await row_counts(session)
    unsigned = {k: v for k, v in headers.items() if k != "X-WC-Webhook-Signature"}

    assert (await client.post(url(shop), content=body, headers=unsigned)).status_code == 401
    assert (
        await client.post("/webhooks/woocommerce/999", content=body, headers=headers)
    ).status_code == 401
    assert await row_counts(session) == before


async def test_creation_ping_is_answered_200_with_no_side_effects(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given a store (the ping may even come before the store is saved)
    shop = await create_woo_shop(session, settings)
    before = await row_counts(session)

    # when WooCommerce pings the new webhook: a form body, no X-WC-* headers
    response = await client.post(
        url(shop),
        content=b"webhook_id=31",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    unknown = await client.post(
        "/webhooks/woocommerce/424242",
        content=b"webhook_id=32",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    # then exactly 200 and nothing written
    assert response.status_code == 200
    assert unknown.status_code == 200
    assert await row_counts(session) == before


async def test_processing_order_earns_once_however_often_it_arrives(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given a store on the default program (1 point per 1 EUR of merchandise, paid trigger)
    shop = await create_woo_shop(session, settings)

    # when the order arrives as created, then updated twice, one delivery id repeated
    body, headers = signed(order(status="processing"), "order.created", delivery_id="d-1")
    first = await client.post(url(shop), content=body, headers=headers)
    again = await client.post(url(shop), content=body, headers=headers)
    updated = await post(client, shop, order(status="completed"), "order.updated")

    # then 72.00 EUR of merchandise earned 72 points, once
    assert [first.json(), again.json(), updated.json()] == [
        {"result": "processed"},
        {"result": "duplicate"},
        {"result": "processed"},
    ]
    assert await balance(session, shop) == {"12": 72}
    await no_drift(session)


async def test_pending_order_does_not_earn_until_it_is_paid(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_woo_shop(session, settings)

    await post(client, shop, order(status="pending"), "order.created")
    assert await balance(session, shop) == {"12": 0}

    await post(client, shop, order(status="processing"), "order.updated")
    assert await balance(session, shop) == {"12": 72}
    await no_drift(session)


async def test_fulfilled_trigger_earns_at_completed_not_processing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given a program that earns once orders are fulfilled
    shop = await create_woo_shop(session, settings)
    config = await current_config(session, shop)
    fulfilled = config.earning.model_copy(update={"trigger": EarningTrigger.fulfilled})
    await save_program(session, shop, config.model_copy(update={"earning": fulfilled}), "test")
    await session.commit()

    await post(client, shop, order(status="processing"), "order.created")
    assert await balance(session, shop) == {"12": 0}

    await post(client, shop, order(status="completed"), "order.updated")
    assert await balance(session, shop) == {"12": 72}
    await no_drift(session)


async def test_partial_refunds_reverse_in_proportion_once_each(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_woo_shop(session, settings)
    await post(client, shop, order(status="completed"), "order.created")

    # when an 18.00 refund arrives (twice: two coalesced updates carry it), then a 9.00 one
    one = [{"id": 801, "reason": "damaged", "total": "-18.00"}]
    await post(client, shop, order(status="completed", refunds=one), "order.updated")
    await post(client, shop, order(status="completed", refunds=one), "order.updated")
    assert await balance(session, shop) == {"12": 54}  # 72 - 72 x 18/72

    two = [*one, {"id": 802, "reason": "", "total": "-9.00"}]
    await post(client, shop, order(status="completed", refunds=two), "order.updated")
    assert await balance(session, shop) == {"12": 45}  # 72 - 72 x 27/72
    await no_drift(session)


async def test_full_refund_status_reverses_everything(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_woo_shop(session, settings)
    await post(client, shop, order(status="completed"), "order.created")

    refunds = [{"id": 803, "reason": "", "total": "-85.90"}]
    await post(client, shop, order(status="refunded", refunds=refunds), "order.updated")

    assert await balance(session, shop) == {"12": 0}
    await no_drift(session)


async def test_cancelled_order_reverses_everything(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_woo_shop(session, settings)
    await post(client, shop, order(status="processing"), "order.created")

    await post(client, shop, order(status="cancelled"), "order.updated")

    assert await balance(session, shop) == {"12": 0}
    await no_drift(session)


async def test_status_flip_flop_completed_cancelled_completed_earns_once_net(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given an order that earned 72, was cancelled, then completed again (twice over)
    shop = await create_woo_shop(session, settings)
    for status in ("completed", "cancelled", "completed", "cancelled", "completed"):
        await post(client, shop, order(status=status), "order.updated")

    # then each cancellation was given back by a reinstatement: 72 net, append-only
    await session.rollback()
    entries = (
        await session.execute(select(LedgerEntry.kind, LedgerEntry.points).order_by(LedgerEntry.id))
    ).all()
    assert [tuple(e) for e in entries] == [
        ("earn", 72),
        ("reverse", -72),
        ("reverse", 72),
        ("reverse", -72),
        ("reverse", 72),
    ]
    assert await balance(session, shop) == {"12": 72}
    await no_drift(session)


async def test_guest_order_matches_the_member_by_billing_email(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given two guest orders (customer_id 0) with one email in different cases
    shop = await create_woo_shop(session, settings)
    await post(
        client, shop, order(order_id=901, customer_id=0, email="Guest@Example.com"), "order.created"
    )
    await post(
        client,
        shop,
        order(order_id=902, customer_id=0, email="guest@example.com "),
        "order.created",
    )

    # then one guest member earned on both
    assert await balance(session, shop) == {"guest@example.com": 144}
    await no_drift(session)


async def test_customer_created_gets_the_signup_bonus_and_claims_guest_points(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_woo_shop(session, settings)
    await post(
        client, shop, order(order_id=903, customer_id=0, email="new@example.com"), "order.created"
    )

    customer = {
        "id": 44,
        "email": "new@example.com",
        "first_name": "New",
        "last_name": "Person",
        "role": "customer",
        "username": "new",
        "billing": {"email": "new@example.com", "phone": ""},
    }
    response = await post(client, shop, customer, "customer.created")

    assert response.status_code == 200
    assert await balance(session, shop) == {"44": 72 + 100}
    await no_drift(session)


async def test_deleted_order_changes_nothing_and_bad_payload_is_dead_lettered(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_woo_shop(session, settings)
    await post(client, shop, order(status="processing"), "order.created")

    trashed = await post(client, shop, {"id": 727}, "order.deleted")
    broken = await post(client, shop, {"id": 728, "status": "processing"}, "order.updated")

    assert trashed.json() == {"result": "processed"}
    assert broken.json()["result"] == "dead_letter"
    assert await balance(session, shop) == {"12": 72}
    await session.rollback()
    outcomes = (
        await session.execute(select(WebhookDelivery.outcome).order_by(WebhookDelivery.id))
    ).scalars()
    assert list(outcomes) == ["processed", "processed", "dead_letter"]
