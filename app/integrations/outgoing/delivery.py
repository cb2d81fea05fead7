"""Delivering member events to subscribed URLs: fan-out, signing, attempts and retries.

A run first turns new outbox events into delivery rows (one per subscription and event,
so an event has exactly one id downstream), then attempts every due delivery: each is
claimed in a short transaction, posted outside any transaction, and its outcome written
afterwards. Failures are retried with exponential backoff for a day; a delivery that is
still failing then gives up and disables its subscription with the reason, and a 410
Gone (Zapier's "unsubscribe me") disables it at once. Replay puts a delivery back.

Signature (documented in docs/connectors.md): `Stamp-Signature: t=<unix>,v1=<hex>`,
where hex is HMAC-SHA256 with the subscription's secret over `<t>.<raw body>`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson

from app.db import unit_of_work
from app.errors import AppError
from app.http import check_public_url
from app.integrations.outgoing.repository import DueDelivery, OutgoingRepository
from app.integrations.outgoing.schemas import event_id
from app.ledger.outbox import WEBHOOK_TYPES
from app.models import DeliveryStatus, Shop, WebhookSubscription
from app.models.base import utcnow
from app.state import State

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "Stamp-Signature"
EVENT_ID_HEADER = "Stamp-Event-Id"
EVENT_TYPE_HEADER = "Stamp-Event-Type"
OUTBOX_NAMES: dict[str, str] = {type_: name for name, type_ in WEBHOOK_TYPES.items()}


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    """Production defaults; tests shrink the settle time."""

    retry_window_seconds: float = 86_400.0  # keep retrying a failing delivery for a day
    first_backoff_seconds: float = 30.0
    max_backoff_seconds: float = 3_600.0
    claim_seconds: float = 300.0  # a crashed attempt is retried after this
    # PostgreSQL may commit event ids out of order: the cursor passes only older events.
    settle_seconds: float = 300.0
    batch: int = 100
    max_batches: int = 50


@dataclass(slots=True)
class DeliveryReport:
    queued: int = 0
    delivered: int = 0
    failed_attempts: int = 0
    gave_up: int = 0
    disabled: list[int] = field(default_factory=list)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(secret: str, body: bytes, header: str, now: float, tolerance: float = 300.0) -> bool:
    """The receiver's side of `sign` (the recipe in docs/connectors.md, in Python)."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def backoff(attempts: int, options: DeliveryOptions) -> float:
    """30 s, 1 min, 2 min, ... doubling per failed attempt, capped at an hour."""
    return min(options.first_backoff_seconds * 2.0 ** (attempts - 1), options.max_backoff_seconds)


def body_of(shop: Shop, due: DueDelivery) -> bytes:
    """The JSON a receiver gets: the event as recorded, and the member as they are now."""
    member = due.member
    redacted = member.redacted_at is not None
    payload: dict[str, Any] = {
        "id": event_id(due.event.id),
        "type": due.delivery.event_type,
        "created_at": due.event.occurred_at.isoformat(),
        "shop": shop.domain,
        "data": {
            "member": {
                "customer_id": member.customer_id,
                "email": None if redacted else member.email,
                "points_balance": member.points_balance,
                "pending_points": member.pending_points,
                "lifetime_points": member.lifetime_points,
                "tier": member.tier_name,
            },
            "properties": dict(due.event.properties or {}),
        },
    }
    return orjson.dumps(payload)


def _error_of(response: httpx.Response) -> str:
    return f"HTTP {response.status_code}: {response.text[:300]}".strip()


async def fan_out(
    state: State, shop_id: int, options: DeliveryOptions, now: datetime | None = None
) -> int:
    """Give every active subscription a delivery row for each new event it wants."""
    now = now or utcnow()
    queued = 0
    async with unit_of_work(state.sessionmaker) as session:
        repo = OutgoingRepository(session)
        for subscription in await repo.active_subscriptions(shop_id):
            names = [OUTBOX_NAMES[type_] for type_ in subscription.events if type_ in OUTBOX_NAMES]
            for _ in range(options.max_batches):
                events = await repo.undelivered_events(subscription, names, options.batch)
                if not events:
                    break
                queued += await repo.add_deliveries(
                    shop_id,
                    subscription.id,
                    [(i, WEBHOOK_TYPES[name]) for i, name, _ in events],
                    now,
                )
            settled_before = now - timedelta(seconds=options.settle_seconds)
            settled = await repo.settled_event_id(subscription, settled_before)
            if settled is not None:
                await repo.advance_cursor(subscription.id, settled)
    return queued


async def _claim(state: State, due: DueDelivery, options: DeliveryOptions, now: datetime) -> bool:
    until = now + timedelta(seconds=options.claim_seconds)
    async with unit_of_work(state.sessionmaker) as session:
        return await OutgoingRepository(session).claim(
            due.delivery.id, due.delivery.next_attempt_at, until
        )


async def _post(
    state: State, subscription: WebhookSubscription, secret: str, due: DueDelivery, body: bytes
) -> httpx.Response:
    await asyncio.to_thread(check_public_url, subscription.url, state.settings)
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, int(time.time()), body),
        EVENT_ID_HEADER: event_id(due.event.id),
        EVENT_TYPE_HEADER: due.delivery.event_type,
    }
    return await state.http.post(subscription.url, content=body, headers=headers)


async def attempt(
    state: State,
    shop: Shop,
    due: DueDelivery,
    options: DeliveryOptions,
    report: DeliveryReport,
    now: datetime,
) -> None:
    """One attempt at one claimed delivery, and what it leaves behind."""
    subscription = due.subscription
    delivery = due.delivery
    secret = state.cipher.decrypt(subscription.secret_enc)
    attempts = delivery.attempts + 1
    first = delivery.first_attempt_at or now
    values: dict[str, Any] = {
        "attempts": attempts,
        "first_attempt_at": first,
        "last_attempt_at": now,
    }
    disable: str | None = None
    try:
        response = await _post(state, subscription, secret, due, body_of(shop, due))
    except AppError as exc:  # the URL now points somewhere the SSRF guard refuses
        values.update(response_status=None, last_error=exc.message, next_attempt_at=now)
        disable = f"Stopped: {exc.message}"
    except httpx.HTTPError as exc:
        values.update(response_status=None, last_error=f"{type(exc).__name__}: {exc}"[:500])
    else:
        values["response_status"] = response.status_code
        if response.is_success:
            values.update(
                status=DeliveryStatus.delivered,
                delivered_at=now,
                last_error=None,
                next_attempt_at=None,
            )
            report.delivered += 1
        elif response.status_code == 410:
            values.update(status=DeliveryStatus.failed, last_error=_error_of(response))
            disable = "The receiver answered 410 Gone, which unsubscribes the URL"
        else:
            values["last_error"] = _error_of(response)
    if values.get("status") is None and disable is None:
        report.failed_attempts += 1
        retry_at = now + timedelta(seconds=backoff(attempts, options))
        if retry_at - first > timedelta(seconds=options.retry_window_seconds):
            values.update(status=DeliveryStatus.failed, next_attempt_at=None)
            report.gave_up += 1
            hours = options.retry_window_seconds / 3600
            disable = (
                f"Deliveries to this URL failed for {hours:g} hours "
                f"({attempts} attempts); last error: {values['last_error']}"
            )
        else:
            values["next_attempt_at"] = retry_at
    async with unit_of_work(state.sessionmaker) as session:
        repo = OutgoingRepository(session)
        await repo.record_attempt(delivery.id, **values)
        if disable is not None:
            await repo.disable(subscription.id, disable)
            report.disabled.append(subscription.id)
            logger.warning("webhook subscription %s disabled: %s", subscription.id, disable)


async def deliver_shop(
    state: State,
    shop_id: int,
    *,
    options: DeliveryOptions | None = None,
    now: datetime | None = None,
) -> DeliveryReport:
    """Queue the shop's new events, then attempt everything due (the job's body)."""
    options = options or DeliveryOptions()
    now = now or utcnow()
    report = DeliveryReport()
    async with state.sessionmaker() as session:
        shop = await session.get(Shop, shop_id)
    if shop is None:
        return report
    report.queued = await fan_out(state, shop_id, options, now)
    for _ in range(options.max_batches):
        async with state.sessionmaker() as session:
            batch = await OutgoingRepository(session).due(shop_id, now, options.batch)
        if not batch:
            break
        for due in batch:
            if due.subscription.id in report.disabled:
                continue
            if await _claim(state, due, options, now):
                await attempt(state, shop, due, options, report, now)
    logger.info("webhooks of shop %s: %s", shop_id, report)
    return report


async def purge_delivered(state: State, days: int, now: datetime | None = None) -> int:
    """Keep the delivery log bounded: delivered rows go after `days`; failures stay."""
    before = (now or utcnow()) - timedelta(days=days)
    async with unit_of_work(state.sessionmaker) as session:
        return await OutgoingRepository(session).purge_delivered(before)


async def shops_due(state: State) -> list[int]:
    async with state.sessionmaker() as session:
        return await OutgoingRepository(session).shops_with_active_subscriptions()
