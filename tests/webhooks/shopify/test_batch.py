"""Order webhooks arriving together: one transaction for the batch, each its own answer."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from app.ledger.batch import apply_orders
from app.models import DeadLetter, LedgerEntry, Member, Order, WebhookDelivery
from app.observability.metrics import WEBHOOK_BATCH_SIZE
from app.settings import Settings
from tests.builders import create_shop, row_counts, shopify_webhook

URL = "/webhooks/shopify"
FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "shopify" / "orders_paid.json"
PAID = orjson.loads(FIXTURE.read_bytes())


def paid_order(number: int, customer: int) -> dict[str, Any]:
    """The fixture order as order `number` of customer `customer` (it earns 72 points)."""
    payload = copy.deepcopy(PAID)
    payload["id"] = 6_000_000 + number
    payload["name"] = f"#{number}"
    payload["customer"]["id"] = 8_000 + customer
    payload["customer"]["email"] = f"buyer{customer}@example.com"
    payload["email"] = f"buyer{customer}@example.com"
    return payload


def batches_above_one() -> float:
    """How many batches of more than one delivery this process has written so far."""
    samples = {
        sample.labels["le"]: sample.value
        for sample in WEBHOOK_BATCH_SIZE.collect()[0].samples
        if sample.name.endswith("_bucket")
    }
    return samples["+Inf"] - samples["1.0"]


async def post_together(
    client: httpx.AsyncClient, requests: list[tuple[bytes, dict[str, str]]]
) -> list[httpx.Response]:
    return list(
        await asyncio.gather(*(client.post(URL, content=b, headers=h) for b, h in requests))
    )


async def test_orders_arriving_together_are_each_answered_and_each_earn_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given an installed shop, and twelve paid orders from eight customers arriving at once,
    # one of them delivered twice and one that verifies but is not an order Stamp can read
    await create_shop(session, settings)
    requests = [
        shopify_webhook(settings, "orders/paid", paid_order(n, n % 8), webhook_id=f"d-{n}")
        for n in range(12)
    ]
    requests.append(requests[3])
    requests.append(shopify_webhook(settings, "orders/paid", {"id": "x"}, webhook_id="d-bad"))
    before = batches_above_one()

    # when they are posted concurrently
    responses = await post_together(client, requests)

    # then each gets its own answer: processed, the copy a duplicate, the bad one kept
    results = [(r.status_code, r.json()["result"]) for r in responses]
    assert results[:12] == [(200, "processed")] * 12
    assert results[12:] == [(200, "duplicate"), (200, "dead_letter")]
    # and some of them were written together
    assert batches_above_one() > before
    # and each order earned exactly once, at the rate of the customer's tier at the time
    earned = (
        await session.execute(
            select(Order.order_id, Order.points_earned, LedgerEntry.points)
            .join(LedgerEntry, LedgerEntry.source_id == Order.order_id)
            .order_by(Order.order_id)
        )
    ).all()
    assert [(order_id, points) for order_id, points, _ in earned] == [
        (str(6_000_000 + n), 72) for n in range(12)
    ]
    assert all(order_points == entry_points for _, order_points, entry_points in earned)
    rows = await session.execute(select(Member.customer_id, Member.points_balance))
    balances = {customer_id: balance for customer_id, balance in rows}
    assert balances == {str(8_000 + c): (144 if c < 4 else 72) for c in range(8)}
    deliveries = await session.scalars(select(WebhookDelivery.delivery_id))
    assert sorted(deliveries) == sorted([f"d-{n}" for n in range(12)] + ["d-bad"])
    letters = list(await session.scalars(select(DeadLetter.delivery_id)))
    assert letters == ["d-bad"]


async def test_a_batch_that_fails_is_processed_again_one_by_one(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a shop, and a batched write that fails every time
    await create_shop(session, settings)

    async def broken(*args: Any) -> list[Any]:
        raise RuntimeError("the batch write broke")

    monkeypatch.setattr("webhooks.batch.apply_orders", broken)
    requests = [
        shopify_webhook(settings, "orders/paid", paid_order(n, n), webhook_id=f"e-{n}")
        for n in range(6)
    ]

    # when six orders arrive together
    responses = await post_together(client, requests)

    # then nothing of the failed batch stays, and each order was processed on its own
    assert [(r.status_code, r.json()["result"]) for r in responses] == [(200, "processed")] * 6
    points = await session.scalars(select(LedgerEntry.points).order_by(LedgerEntry.source_id))
    assert list(points) == [72] * 6
    assert await session.scalar(select(DeadLetter.id)) is None


async def test_a_batch_that_deadlocks_is_tried_once_more_as_a_whole(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a shop, and a batched write whose first attempt writes, then deadlocks
    await create_shop(session, settings)
    sizes: list[int] = []

    async def deadlocks_once(session: AsyncSession, shop: Any, items: list[Any]) -> list[Any]:
        sizes.append(len(items))
        written = await apply_orders(session, shop, items)
        if len(sizes) == 1:
            raise OperationalError("INSERT INTO orders", {}, Exception("deadlock detected"))
        return written

    monkeypatch.setattr("webhooks.batch.apply_orders", deadlocks_once)
    requests = [
        shopify_webhook(settings, "orders/paid", paid_order(n, n), webhook_id=f"g-{n}")
        for n in range(6)
    ]

    # when six orders arrive together
    responses = await post_together(client, requests)

    # then the failed batch went again whole, and each order earned exactly once
    assert sizes[0] > 1
    assert sizes[1] == sizes[0]
    assert [(r.status_code, r.json()["result"]) for r in responses] == [(200, "processed")] * 6
    points = await session.scalars(select(LedgerEntry.points).order_by(LedgerEntry.source_id))
    assert list(points) == [72] * 6


async def test_orders_for_a_shop_that_is_not_installed_get_its_answer_and_write_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given no shop at all
    before = await row_counts(session)
    requests = [
        shopify_webhook(settings, "orders/paid", paid_order(n, n), shop="nobody.myshopify.com")
        for n in range(4)
    ]

    # when orders for it arrive together
    responses = await post_together(client, requests)

    # then each is refused as the pipeline refuses one, and no row changed
    assert [r.status_code for r in responses] == [404] * 4
    assert {r.json()["error"]["code"] for r in responses} == {"unknown_shop"}
    assert await row_counts(session) == before


def test_the_batched_path_is_the_engine_for_order_topics_only() -> None:
    from webhooks.shopify.receiver import BATCHED_TOPICS

    assert sorted(BATCHED_TOPICS) == [
        "orders/cancelled",
        "orders/create",
        "orders/fulfilled",
        "orders/paid",
    ]
