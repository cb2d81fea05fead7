"""Shopify webhook intake: verify, dedupe, handle, dead-letter, retry."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    ComplianceRequest,
    DataExport,
    DeadLetter,
    LedgerEntry,
    Member,
    Shop,
    ShopStatus,
    WebhookDelivery,
)
from app.settings import Settings
from app.state import State
from tests.builders import (
    all_stored_text,
    create_member,
    create_shop,
    row_counts,
    shopify_webhook,
)
from webhooks import pipeline
from webhooks.handlers import handlers_for
from webhooks.shopify import handlers as shopify_handlers

URL = "/webhooks/shopify"
UNINSTALL_PAYLOAD = {
    "id": 548380009,
    "name": "Some Shop",
    "myshopify_domain": "some-shop.myshopify.com",
}


async def test_bad_signature_is_refused_and_writes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given an installed shop and a body signed with the wrong secret
    await create_shop(session, settings)
    body, headers = shopify_webhook(settings, "app/uninstalled", UNINSTALL_PAYLOAD)
    headers["X-Shopify-Hmac-Sha256"] = "D0UMXmhjwBRi4y66TmhJrDlhQABD7zI2fm3p6/QLMo8="
    before = await row_counts(session)

    # when Shopify (or anyone) posts it
    response = await client.post(URL, content=body, headers=headers)

    # then it is refused with 401 and no row changes
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    assert await row_counts(session) == before
    shop = (await session.execute(select(Shop))).scalar_one()
    await session.refresh(shop)
    assert shop.status == ShopStatus.installed


async def test_signature_over_reserialised_body_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await create_shop(session, settings)
    body, headers = shopify_webhook(settings, "app/uninstalled", UNINSTALL_PAYLOAD)
    before = await row_counts(session)

    response = await client.post(URL, content=body.replace(b",", b", "), headers=headers)

    assert response.status_code == 401
    assert await row_counts(session) == before


async def test_same_delivery_twice_is_stored_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await create_shop(session, settings)
    body, headers = shopify_webhook(
        settings, "app/uninstalled", UNINSTALL_PAYLOAD, webhook_id="b54557e4-bdd9-4b37-8a5f"
    )

    first = await client.post(URL, content=body, headers=headers)
    second = await client.post(URL, content=body, headers=headers)

    assert (first.status_code, first.json()) == (200, {"result": "processed"})
    assert (second.status_code, second.json()) == (200, {"result": "duplicate"})
    deliveries = (await session.execute(select(WebhookDelivery))).scalars().all()
    assert [(d.delivery_id, d.topic) for d in deliveries] == [
        ("b54557e4-bdd9-4b37-8a5f", "app/uninstalled")
    ]


async def test_unknown_shop_is_refused_and_writes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    body, headers = shopify_webhook(
        settings, "app/uninstalled", UNINSTALL_PAYLOAD, shop="stranger.myshopify.com"
    )
    before = await row_counts(session)

    response = await client.post(URL, content=body, headers=headers)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_shop"
    assert await row_counts(session) == before


async def test_uninstalled_shop_refuses_order_topics_but_accepts_compliance(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given a shop that uninstalled Stamp
    await create_shop(session, settings, status=ShopStatus.uninstalled)
    order_body, order_headers = shopify_webhook(settings, "orders/paid", {"id": 1})
    before = await row_counts(session)

    # when an order topic arrives, it is refused with nothing written
    refused = await client.post(URL, content=order_body, headers=order_headers)
    assert refused.status_code == 410
    assert await row_counts(session) == before

    # and a compliance topic is still accepted (shop/redact comes 48 h after uninstall)
    request = {
        "shop_id": 1,
        "shop_domain": "some-shop.myshopify.com",
        "customer": {"id": 7, "email": "a@example.com", "phone": None},
        "data_request": {"id": 99},
        "orders_requested": [],
    }
    body, headers = shopify_webhook(settings, "customers/data_request", request)
    accepted = await client.post(URL, content=body, headers=headers)
    assert accepted.status_code == 200
    assert accepted.json() == {"result": "processed"}


async def test_invalid_headers_are_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await create_shop(session, settings)
    body, headers = shopify_webhook(settings, "app/uninstalled", UNINSTALL_PAYLOAD, shop="evil.com")
    before = await row_counts(session)

    response = await client.post(URL, content=body, headers=headers)

    assert response.status_code == 400
    assert await row_counts(session) == before


async def test_oversized_body_is_refused_before_reading(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await create_shop(session, settings)
    body, headers = shopify_webhook(settings, "orders/paid", b'{"x":"' + b"a" * 6_000_000 + b'"}')
    before = await row_counts(session)

    response = await client.post(URL, content=body, headers=headers)

    assert response.status_code == 413
    assert await row_counts(session) == before


async def test_verified_but_unreadable_payload_becomes_a_dead_letter(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given a correctly signed body that is not JSON
    await create_shop(session, settings)
    body, headers = shopify_webhook(settings, "app/uninstalled", b"{not json", webhook_id="dl-1")

    # when it arrives
    response = await client.post(URL, content=body, headers=headers)

    # then Shopify hears 200 (no pointless retries) and the body is kept whole with the error
    assert response.status_code == 200
    assert response.json() == {"result": "dead_letter"}
    letter = (await session.execute(select(DeadLetter))).scalar_one()
    assert (letter.topic, letter.delivery_id, letter.body) == ("app/uninstalled", "dl-1", body)
    assert letter.error.startswith("JSONDecodeError")
    assert letter.headers["x-shopify-topic"] == "app/uninstalled"
    delivery = (await session.execute(select(WebhookDelivery))).scalar_one()
    assert delivery.outcome == "dead_letter"


async def test_handler_failure_rolls_back_its_writes_and_keeps_a_dead_letter(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a handler that writes, then fails on something it does not understand
    shop = await create_shop(session, settings)

    async def half_done(ctx: pipeline.HandlerContext, payload: Any) -> None:
        ctx.session.add(Member(shop_id=ctx.shop.id, customer_id="1", email="x@example.com"))
        await ctx.session.flush()
        raise ValueError("line_items[0].price is not a number")

    monkeypatch.setitem(shopify_handlers.HANDLERS, "orders/paid", half_done)
    body, headers = shopify_webhook(settings, "orders/paid", {"id": 1})

    # when it is delivered
    response = await client.post(URL, content=body, headers=headers)

    # then its partial write is gone, and the payload waits as a dead letter
    assert response.json() == {"result": "dead_letter"}
    assert (await session.execute(select(Member))).scalars().all() == []
    letter = (await session.execute(select(DeadLetter))).scalar_one()
    assert letter.shop_id == shop.id
    assert letter.error == "ValueError: line_items[0].price is not a number"


async def test_transient_failure_answers_503_and_writes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await create_shop(session, settings)

    async def database_down(ctx: pipeline.HandlerContext, payload: Any) -> None:
        raise OperationalError("UPDATE members", {}, ConnectionRefusedError("db down"))

    monkeypatch.setitem(shopify_handlers.HANDLERS, "orders/paid", database_down)
    body, headers = shopify_webhook(settings, "orders/paid", {"id": 1}, webhook_id="t-1")
    before = await row_counts(session)

    response = await client.post(URL, content=body, headers=headers)

    # Shopify retries a 5xx, and the retry must not look like a duplicate
    assert response.status_code == 503
    assert await row_counts(session) == before


async def test_replay_resolves_a_dead_letter_once_it_can_be_handled(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    state: State,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a dead letter for a topic Stamp could not handle at the time
    await create_shop(session, settings)
    body, headers = shopify_webhook(settings, "orders/paid", {"id": 5}, webhook_id="r-1")
    monkeypatch.delitem(shopify_handlers.HANDLERS, "orders/paid", raising=False)
    assert (await client.post(URL, content=body, headers=headers)).json() == {
        "result": "dead_letter"
    }
    letter_id = (await session.execute(select(DeadLetter.id))).scalar_one()
    seen: list[Any] = []

    async def now_understood(ctx: pipeline.HandlerContext, payload: Any) -> None:
        seen.append(payload)

    # when the handler exists and the letter is replayed
    monkeypatch.setitem(shopify_handlers.HANDLERS, "orders/paid", now_understood)
    outcome = await pipeline.replay(state, letter_id, handlers_for)

    # then it ran with the stored payload and the letter is resolved
    assert (outcome.status_code, outcome.result) == (200, "processed")
    assert seen == [{"id": 5}]
    await session.rollback()  # end the test's read snapshot
    letter = (await session.execute(select(DeadLetter))).scalar_one()
    assert letter.resolved_at is not None
    assert letter.attempts == 2
    again = await pipeline.replay(state, letter_id, handlers_for)
    assert again.result == "not_found"


async def test_app_uninstalled_wipes_tokens_and_is_idempotent(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await create_shop(session, settings)
    await create_member(
        session,
        (await session.execute(select(Shop))).scalar_one(),
        customer_id="7",
        email="kept@example.com",
    )

    for webhook_id in ("u-1", "u-2"):
        body, headers = shopify_webhook(
            settings, "app/uninstalled", UNINSTALL_PAYLOAD, webhook_id=webhook_id
        )
        response = await client.post(URL, content=body, headers=headers)
        assert response.status_code == 200

    shop = (await session.execute(select(Shop))).scalar_one()
    await session.refresh(shop)
    assert shop.status == ShopStatus.uninstalled
    assert shop.access_token_enc is None
    assert shop.refresh_token_enc is None
    assert shop.uninstalled_at is not None
    member = (await session.execute(select(Member))).scalar_one()
    assert member.email == "kept@example.com"


async def test_customers_data_request_exports_what_stamp_holds(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    member = await create_member(
        session,
        shop,
        customer_id="207119551",
        email="bob@example.com",
        first_name="Bob",
        points_balance=120,
    )
    session.add(
        LedgerEntry(
            shop_id=shop.id,
            member_id=member.id,
            points=120,
            kind="earn",
            idempotency_key="order:1:earn",
            amount=Decimal("120.00"),
            currency="USD",
            source_type="order",
            source_id="1",
        )
    )
    await session.commit()
    request = {
        "shop_id": 1,
        "shop_domain": shop.domain,
        "orders_requested": [1],
        "customer": {"id": 207119551, "email": "bob@example.com", "phone": "+15551234567"},
        "data_request": {"id": 9999},
    }
    body, headers = shopify_webhook(settings, "customers/data_request", request)

    response = await client.post(URL, content=body, headers=headers)

    assert response.status_code == 200
    export = (await session.execute(select(DataExport))).scalar_one()
    assert (export.customer_id, export.request_id) == ("207119551", "9999")
    [held] = export.export["members"]
    assert (held["email"], held["first_name"], held["points_balance"]) == (
        "bob@example.com",
        "Bob",
        120,
    )
    assert [(e["points"], e["source"]) for e in held["ledger"]] == [(120, "order:1")]
    record = (await session.execute(select(ComplianceRequest))).scalar_one()
    assert record.topic == "customers/data_request"
    delivery = (await session.execute(select(WebhookDelivery))).scalar_one()
    assert delivery.body is None


async def test_customers_redact_leaves_no_trace_of_the_customer(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given a member with a ledger, a stored order webhook body, a dead letter and an export
    shop = await create_shop(session, settings)
    member = await create_member(
        session,
        shop,
        customer_id="207119551",
        email="jane.doe@example.com",
        first_name="Janelle",
        last_name="Doerington",
        phone="+16135550123",
        points_balance=42,
    )
    session.add(
        LedgerEntry(
            shop_id=shop.id,
            member_id=member.id,
            points=42,
            kind="earn",
            idempotency_key="order:1:earn",
            amount=Decimal("42.50"),
            currency="USD",
        )
    )
    order = {
        "id": 1,
        "email": "Jane.Doe@example.com",
        "phone": "+16135550123",
        "customer": {"id": 207119551, "first_name": "Janelle", "last_name": "Doerington"},
        "billing_address": {
            "name": "Janelle Doerington",
            "address1": "1 Main St",
            "phone": "+16135550123",
        },
        "total_price": "42.50",
    }
    body, headers = shopify_webhook(settings, "orders/edited", order)
    assert (await client.post(URL, content=body, headers=headers)).json() == {
        "result": "dead_letter"
    }  # a topic Stamp does not handle: stored delivery body and a dead letter
    session.add(
        DataExport(
            shop_id=shop.id, customer_id="207119551", export={"email": "jane.doe@example.com"}
        )
    )
    await session.commit()
    assert "jane.doe@example.com" in await all_stored_text(session)

    # when Shopify asks for the customer to be redacted
    redact = {
        "shop_id": 1,
        "shop_domain": shop.domain,
        "orders_to_redact": [1],
        "customer": {"id": 207119551, "email": "jane.doe@example.com", "phone": "+16135550123"},
    }
    body, headers = shopify_webhook(settings, "customers/redact", redact)
    response = await client.post(URL, content=body, headers=headers)

    # then no table holds the email, name or phone, and the ledger's amounts remain
    assert response.status_code == 200
    stored = await all_stored_text(session)
    for personal in ("jane.doe@example.com", "janelle", "doerington", "6135550123", "1 main st"):
        assert personal not in stored, personal
    member = (await session.execute(select(Member))).scalar_one()
    await session.refresh(member)
    assert (member.customer_id, member.points_balance) == ("207119551", 42)
    assert member.redacted_at is not None
    entry = (await session.execute(select(LedgerEntry))).scalar_one()
    assert (entry.points, entry.amount) == (42, Decimal("42.50"))


async def test_shop_redact_erases_every_member_of_an_uninstalled_shop(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings, status=ShopStatus.uninstalled)
    await create_member(
        session, shop, customer_id="1", email="one@example.com", first_name="Oneida"
    )
    await create_member(
        session, shop, customer_id="2", email="two@example.com", phone="+15550000002"
    )

    body, headers = shopify_webhook(
        settings, "shop/redact", {"shop_id": 1, "shop_domain": shop.domain}
    )
    response = await client.post(URL, content=body, headers=headers)

    assert response.status_code == 200
    stored = await all_stored_text(session)
    for personal in (
        "one@example.com",
        "oneida",
        "two@example.com",
        "15550000002",
        "owner@some-shop.example",
    ):
        assert personal not in stored, personal
    await session.refresh(shop)
    assert shop.status == ShopStatus.redacted


async def test_compliance_for_a_shop_never_seen_is_answered_without_writing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    body, headers = shopify_webhook(
        settings, "shop/redact", {"shop_id": 1}, shop="never-installed.myshopify.com"
    )

    response = await client.post(URL, content=body, headers=headers)

    assert response.status_code == 200
    assert set((await row_counts(session)).values()) == {0}
