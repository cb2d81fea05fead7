"""Concurrency on PostgreSQL: row locks and unique keys, not luck, keep the ledger exact."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.ledger import engine
from app.models import DeadLetter, LedgerEntry, Member, WebhookDelivery
from app.settings import Settings
from tests.builders import shopify_webhook
from tests.ledger.test_engine import fixture, installed_shop
from tests.ledger.test_routes import arrange

pytestmark = pytest.mark.postgres_only


async def test_twenty_concurrent_deliveries_of_one_order_earn_exactly_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given one order sent 20 times at once with distinct webhook ids (retries, topics)
    await installed_shop(session, settings)
    requests = [
        shopify_webhook(settings, "orders/paid", fixture("orders_paid"), webhook_id=f"w-{n}")
        for n in range(20)
    ]

    # when they all arrive together
    responses = await asyncio.gather(
        *(
            client.post("/webhooks/shopify", content=body, headers=headers)
            for body, headers in requests
        )
    )

    # then every delivery is acknowledged, none deadlocked, and the order earned once
    assert [r.status_code for r in responses] == [200] * 20
    assert sorted(r.json()["result"] for r in responses) == ["processed"] * 20
    await session.rollback()
    earns = await session.execute(select(LedgerEntry).where(LedgerEntry.kind == "earn"))
    assert [(e.points, e.idempotency_key) for e in earns.scalars()] == [
        (72, "order:5912345678901:earn")
    ]
    assert await session.scalar(select(func.count()).select_from(WebhookDelivery)) == 20
    assert await session.scalar(select(func.count()).select_from(DeadLetter)) == 0
    assert (await session.execute(select(Member.points_balance))).scalar_one() == 72
    assert await engine.verify(session) == []


async def test_twenty_concurrent_adjustments_sum_exactly(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await arrange(session, settings)  # balance 100

    responses = await asyncio.gather(
        *(
            client.post(
                "/api/v1/members/42/adjustments",
                headers=headers,
                json={"points": n, "reason": "bulk", "idempotency_key": f"c-{n}"},
            )
            for n in range(1, 21)
        )
    )

    assert [r.status_code for r in responses] == [201] * 20
    await session.rollback()
    assert (await session.execute(select(Member.points_balance))).scalar_one() == 100 + 210
    assert await engine.verify(session) == []


async def test_concurrent_deductions_never_overdraw(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given 100 points and 20 simultaneous deductions of 30
    _, headers = await arrange(session, settings)

    responses = await asyncio.gather(
        *(
            client.post(
                "/api/v1/members/42/adjustments",
                headers=headers,
                json={"points": -30, "reason": "spend", "idempotency_key": f"s-{n}"},
            )
            for n in range(20)
        )
    )

    # then exactly three succeed and the balance stops at 10, never below zero
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 3 + [409] * 17
    await session.rollback()
    assert (await session.execute(select(Member.points_balance))).scalar_one() == 10
    assert await engine.verify(session) == []


async def test_twenty_concurrent_repeats_of_one_key_apply_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await arrange(session, settings)
    body = {"points": 7, "reason": "once", "idempotency_key": "same"}

    responses = await asyncio.gather(
        *(
            client.post("/api/v1/members/42/adjustments", headers=headers, json=body)
            for _ in range(20)
        )
    )

    assert [r.status_code for r in responses] == [201] * 20
    first = responses[0].json()
    assert all(r.json() == first for r in responses)
    await session.rollback()
    assert (await session.execute(select(Member.points_balance))).scalar_one() == 107
