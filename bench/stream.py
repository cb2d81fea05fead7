"""A stream of signed Shopify webhooks as Shopify really sends them, and what it left behind.

`mixed_stream` builds orders (`bench.payloads`), partial refunds (some delivered before
their order), exact re-deliveries (same `X-Shopify-Webhook-Id`) and the same order sent
again as a new delivery. `send` posts them with Shopify's behaviour on failure: anything
but a 2xx, or no answer, is retried with backoff. `dump` reads the outcome row by row in a
form that does not depend on row ids or the clock, so two runs can be compared exactly.
"""

from __future__ import annotations

import asyncio
import copy
import random
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from app.integrations.shopify.signing import webhook_hmac
from bench.payloads import API_VERSION, signed_orders

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "shopify"


@dataclass(frozen=True, slots=True)
class Delivery:
    topic: str
    body: bytes
    headers: dict[str, str]
    lane: int  # deliveries of one buyer share a lane, so they keep their relative order


def signed(
    topic: str, payload: Any, secret: str, shop: str, webhook_id: str
) -> tuple[bytes, dict[str, str]]:
    """A body and headers signed exactly as Shopify signs them."""
    body = orjson.dumps(payload)
    return body, {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Hmac-Sha256": webhook_hmac(secret, body),
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Event-Id": str(uuid.uuid4()),
        "X-Shopify-API-Version": API_VERSION,
        "X-Shopify-Triggered-At": "2026-09-20T15:05:00+00:00",
    }


def refund_payload(order: dict[str, Any], refund_id: int, share: Decimal) -> dict[str, Any]:
    """A `refunds/create` giving back `share` of the order's first line (shop money)."""
    refund: dict[str, Any] = orjson.loads((FIXTURES / "refunds_create.json").read_bytes())
    line = order["line_items"][0]
    amount = (Decimal(line["price"]) * line["quantity"] * share).quantize(Decimal("0.01"))
    money = {"amount": str(amount), "currency_code": "USD"}
    refund_line = copy.deepcopy(refund["refund_line_items"][0])
    refund_line.update(
        {
            "id": refund_id,
            "line_item_id": line["id"],
            "quantity": 1,
            "subtotal": float(amount),
            "subtotal_set": {"shop_money": money, "presentment_money": money},
            "line_item": line,
        }
    )
    refund.update(
        {
            "id": refund_id,
            "order_id": order["id"],
            "refund_line_items": [refund_line],
            "transactions": [],
            "order_adjustments": [],
            "refund_shipping_lines": [],
        }
    )
    return refund


def mixed_stream(
    orders: int, *, secret: str, shop: str, seed: int = 11, refunds: float = 0.3,
    resend: float = 0.15, redeliver: float = 0.05,
) -> list[Delivery]:  # fmt: skip
    """`orders` paid orders plus refunds, re-sends and re-deliveries, shuffled per buyer."""
    rng = random.Random(seed)
    per_buyer: dict[int, list[Delivery]] = {}
    for request in signed_orders(orders, secret=secret, shop_domain=shop, seed=seed,
                                 new_buyer_share=0.5, target_bytes=1024):  # fmt: skip
        lane = per_buyer.setdefault(request.buyer_key, [])
        lane.append(Delivery("orders/paid", request.body, request.headers, request.buyer_key))
        order = orjson.loads(request.body)
        if rng.random() < redeliver:
            body, headers = signed("orders/paid", order, secret, shop, str(uuid.uuid4()))
            lane.append(Delivery("orders/paid", body, headers, request.buyer_key))
        if rng.random() < refunds:
            for part, share in enumerate(("0.5", "0.5")[: rng.choice((1, 2))]):
                refund = refund_payload(order, order["id"] * 10 + part, Decimal(share))
                body, headers = signed("refunds/create", refund, secret, shop, str(uuid.uuid4()))
                # A refund may reach Stamp before its order (it goes first in the lane).
                place = 0 if rng.random() < 0.3 else len(lane)
                lane.insert(place, Delivery("refunds/create", body, headers, request.buyer_key))
    stream: list[Delivery] = []
    lanes = list(per_buyer.values())
    while lanes:
        lane = rng.choice(lanes)
        stream.append(lane.pop(0))
        if not lane:
            lanes.remove(lane)
    # Exact re-deliveries (Shopify retrying one it thinks failed) race the original.
    for delivery in list(stream):
        if rng.random() < resend:
            stream.insert(rng.randrange(len(stream) + 1), delivery)
    return stream


@dataclass
class SendReport:
    answers: Counter[str] = field(default_factory=Counter)  # final answer per delivery
    attempts: int = 0
    failures: Counter[str] = field(default_factory=Counter)  # every non-2xx try, by status
    given_up: int = 0
    seconds: float = 0.0


async def send(
    base_url: str,
    stream: Sequence[Delivery],
    *,
    concurrency: int = 8,
    by_lane: bool = True,
    max_attempts: int = 30,
    backoff: float = 0.25,
    request_timeout: float = 30.0,
    report: SendReport | None = None,
) -> SendReport:
    """Post every delivery; retry like Shopify on 5xx, 429, timeouts and refused connections.

    With `by_lane`, one buyer's deliveries are sent in stream order (different buyers
    concurrently), so a run's outcome is comparable with a sequential run's, and a re-send
    goes out, on its own, once the first copy was answered (when it can no longer change
    which of the buyer's deliveries was applied first). Without it, every delivery goes
    to whichever sender is free.
    """
    import httpx

    report = report if report is not None else SendReport()  # pass one to watch progress
    started = time.perf_counter()
    queues: list[list[Delivery]] = [[] for _ in range(concurrency)]
    answered: dict[str, asyncio.Event] = {}
    resends: list[Delivery] = []
    for index, delivery in enumerate(stream):
        webhook_id = delivery.headers["X-Shopify-Webhook-Id"]
        if not by_lane:
            queues[index % concurrency].append(delivery)
        elif webhook_id in answered:
            resends.append(delivery)
        else:
            answered[webhook_id] = asyncio.Event()
            queues[delivery.lane % concurrency].append(delivery)

    async def post(client: httpx.AsyncClient, delivery: Delivery) -> None:
        # Triggered now; Shopify keeps the first time on its retries (the HMAC covers the
        # body only), so /metrics' webhook lag shows how late a retried delivery is.
        headers = delivery.headers | {"X-Shopify-Triggered-At": datetime.now(UTC).isoformat()}
        for attempt in range(max_attempts):
            report.attempts += 1
            try:
                response = await client.post(
                    base_url + "/webhooks/shopify", content=delivery.body, headers=headers
                )
                status = str(response.status_code)
                if response.status_code < 300:
                    report.answers[response.json().get("result", status)] += 1
                    return
                if response.status_code < 500 and response.status_code != 429:
                    report.answers[status] += 1  # Shopify does not retry a 4xx either
                    return
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            report.failures[status] += 1
            await asyncio.sleep(min(backoff * 2**attempt, 5.0))
        report.given_up += 1

    async def sender(client: httpx.AsyncClient, queue: list[Delivery]) -> None:
        for delivery in queue:
            await post(client, delivery)
            if by_lane:
                answered[delivery.headers["X-Shopify-Webhook-Id"]].set()

    async def resend(client: httpx.AsyncClient, delivery: Delivery) -> None:
        await answered[delivery.headers["X-Shopify-Webhook-Id"]].wait()
        await post(client, delivery)

    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=request_timeout, limits=limits) as client:
        await asyncio.gather(
            *(sender(client, queue) for queue in queues if queue),
            *(resend(client, delivery) for delivery in resends),
        )
    report.seconds = time.perf_counter() - started
    return report


# --- what a run left behind ------------------------------------------------------------

_MEMBER = "COALESCE(m.customer_id, '') || '|' || COALESCE(m.email, '')"
QUERIES = {
    "members": (
        "SELECT customer_id, email, is_account, points_balance, pending_points, "
        "lifetime_points, tier_name, expiring_points FROM members m "
        "ORDER BY customer_id, email"
    ),
    "ledger_entries": (
        f"SELECT {_MEMBER} AS member, e.points, e.kind, e.status, e.source_type, e.source_id, "
        "e.idempotency_key, e.amount, e.currency FROM ledger_entries e "
        "JOIN members m ON m.id = e.member_id ORDER BY e.idempotency_key, member"
    ),
    "orders": (
        f"SELECT o.order_id, {_MEMBER} AS member, o.currency, o.merchandise_amount, "
        "o.total_amount, o.refunded_merchandise, o.points_earned, o.points_reversed, "
        "o.status, o.placed_at FROM orders o LEFT JOIN members m ON m.id = o.member_id "
        "ORDER BY o.order_id"
    ),
    "order_refunds": (
        "SELECT order_id, refund_id, merchandise_amount FROM order_refunds "
        "ORDER BY order_id, refund_id"
    ),
    "webhook_deliveries": (
        "SELECT delivery_id, topic, outcome FROM webhook_deliveries ORDER BY delivery_id"
    ),
    "dead_letters": "SELECT topic, delivery_id, error FROM dead_letters ORDER BY delivery_id",
}


async def dump(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row that matters, without ids or clock times, in a stable order."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.settings import async_database_url

    engine = create_async_engine(async_database_url(database_url))
    try:
        async with engine.connect() as connection:
            return {
                table: [tuple(row) for row in await connection.execute(text(query))]
                for table, query in QUERIES.items()
            }
    finally:
        await engine.dispose()


async def ledger_drift(database_url: str) -> list[str]:
    """`stamp ledger verify`'s check: members whose cached balance differs from entries."""
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    from app.ledger.engine import verify
    from app.settings import async_database_url

    engine = create_async_engine(async_database_url(database_url))
    try:
        async with AsyncSession(engine) as session:
            return await verify(session, None)
    finally:
        await engine.dispose()
