"""One intake pipeline for every platform.

verify (by the receiver, on the raw bytes) → insert the delivery under a unique
(shop, source, delivery id) → if new, parse and run the topic's handler in the same
transaction → commit → 200. A payload that verifies but cannot be understood is kept
whole as a dead letter (answered 200, replayable); a transient failure such as the
database being down is answered 503 so the platform retries. Nothing is lost either way.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import insert_rows_ignoring_conflicts, unit_of_work
from app.models import Base, DeadLetter, Shop, ShopStatus, WebhookDelivery
from app.models.base import utcnow
from app.program.service import remember_program
from app.shops.repository import ShopRepository
from app.state import State

logger = logging.getLogger("stamp.webhooks")

MAX_BODY_BYTES = 5 * 1024 * 1024
KEPT_HEADERS = ("topic", "shop-domain", "webhook-id", "event-id", "triggered-at", "api-version")


@dataclass(slots=True)
class Delivery:
    """A verified delivery, as the receiver read it off the wire."""

    source: str
    topic: str
    delivery_id: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    store_body: bool = True


@dataclass(slots=True)
class HandlerContext:
    state: State
    session: AsyncSession
    shop: Shop
    delivery: Delivery


Handler = Callable[[HandlerContext, Any], Awaitable[None]]


@dataclass(slots=True)
class Outcome:
    status_code: int
    result: str
    detail: str = ""


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    ConnectionError,
    TimeoutError,
    OSError,
)


# SQLSTATEs that mean "try the same thing again": deadlock detected, serialization failure.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def is_transient(exc: BaseException) -> bool:
    """Failures worth a platform retry: the database or network, never the payload.

    A deadlock (two transactions locking the same member or rollup rows in opposite
    orders) aborts one of them; that delivery is answered 503 and retried, not kept as a
    dead letter.
    """
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        original = exc.orig
        code = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
        if code in RETRYABLE_SQLSTATES:
            return True
    return isinstance(exc, TRANSIENT_ERRORS)


def parse_json(body: bytes) -> Any:
    return orjson.loads(body)


def delivery_row(shop_id: int, delivery: Delivery, received_at: datetime) -> dict[str, Any]:
    """The `webhook_deliveries` row of a delivery (stored as processed)."""
    return {
        "shop_id": shop_id,
        "source": delivery.source,
        "delivery_id": delivery.delivery_id,
        "topic": delivery.topic,
        "body": delivery.body if delivery.store_body else None,
        "received_at": received_at,
        "outcome": "processed",
    }


async def insert_deliveries(session: AsyncSession, rows: list[dict[str, Any]]) -> set[str]:
    """Insert `delivery_row`s, skipping any delivery seen before (per shop and source); the
    delivery ids that were new."""
    table = Base.metadata.tables[WebhookDelivery.__tablename__]
    key = ("shop_id", "source", "delivery_id")
    result = await insert_rows_ignoring_conflicts(session, table, rows, key, ("delivery_id",))
    return set(result.scalars())


async def _insert_delivery(session: AsyncSession, shop_id: int, delivery: Delivery) -> bool:
    """True when this delivery is new."""
    return bool(await insert_deliveries(session, [delivery_row(shop_id, delivery, utcnow())]))


def _kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    kept: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if any(lowered.endswith(suffix) for suffix in KEPT_HEADERS):
            kept[lowered] = value
    return kept


@dataclass(frozen=True, slots=True)
class ShopGate:
    """Which shop a delivery is for, and what its status lets through."""

    platform: str
    domain: str
    accepts_when_uninstalled: bool = False
    accepts_unknown_shop: bool = False


async def find_shop(session: AsyncSession, gate: ShopGate) -> Shop | None:
    """The shop, read with its current program version id (one statement for both)."""
    found = await ShopRepository(session).get_with_program(gate.domain, gate.platform)
    if found is None:
        return None
    shop, version_id = found
    remember_program(session, shop.id, version_id)
    return shop


async def process(
    state: State, gate: ShopGate, delivery: Delivery, handlers: Mapping[str, Handler]
) -> Outcome:
    """Find the shop, dedupe, handle and commit one verified delivery, in one transaction."""
    shop_id: int | None = None
    try:
        async with unit_of_work(state.sessionmaker) as session:
            shop = await find_shop(session, gate)
            if shop is None:
                if gate.accepts_unknown_shop:
                    # Nothing is held for a shop we never knew: the request is satisfied.
                    return Outcome(200, "no_data")
                return Outcome(404, "unknown_shop", f"{gate.domain} has not installed Stamp")
            if shop.status != ShopStatus.installed and not gate.accepts_when_uninstalled:
                return Outcome(410, "shop_uninstalled", f"{gate.domain} has uninstalled Stamp")
            shop_id = shop.id
            if not await _insert_delivery(session, shop_id, delivery):
                return Outcome(200, "duplicate")
            handler = handlers.get(delivery.topic)
            if handler is None:
                raise UnhandledTopic(f"Stamp has no handler for topic {delivery.topic!r}")
            payload = parse_json(delivery.body)
            await handler(HandlerContext(state, session, shop, delivery), payload)
        return Outcome(200, "processed")
    except Exception as exc:
        if is_transient(exc) or shop_id is None:
            logger.warning("transient failure on %s %s: %s", delivery.source, delivery.topic, exc)
            return Outcome(503, "retry", "temporarily unavailable; please retry")
        return await _dead_letter(state, shop_id, delivery, exc)


class UnhandledTopic(ValueError):
    pass


async def _dead_letter(
    state: State, shop_id: int, delivery: Delivery, exc: BaseException
) -> Outcome:
    """Keep what we could not process, with the reason, in a fresh transaction."""
    error = f"{type(exc).__name__}: {exc}"
    logger.error(
        "dead letter %s %s for shop %s: %s", delivery.source, delivery.topic, shop_id, error
    )
    try:
        async with unit_of_work(state.sessionmaker) as session:
            inserted = await _insert_delivery(session, shop_id, delivery)
            if not inserted:
                # A concurrent delivery with the same id won the race and was processed.
                return Outcome(200, "duplicate")
            await session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.shop_id == shop_id,
                    WebhookDelivery.source == delivery.source,
                    WebhookDelivery.delivery_id == delivery.delivery_id,
                )
                .values(outcome="dead_letter")
            )
            session.add(
                DeadLetter(
                    shop_id=shop_id,
                    source=delivery.source,
                    topic=delivery.topic,
                    delivery_id=delivery.delivery_id,
                    headers=_kept_headers(delivery.headers),
                    body=delivery.body,
                    error=error[:4000],
                )
            )
    except Exception as storage_exc:
        if is_transient(storage_exc):
            return Outcome(503, "retry", "temporarily unavailable; please retry")
        raise
    return Outcome(200, "dead_letter", error)


async def replay(
    state: State, dead_letter_id: int, handlers_for: Callable[[str], Mapping[str, Handler]]
) -> Outcome:
    """Run a dead letter's payload through its handler again; resolve it on success."""
    async with state.sessionmaker() as session:
        letter = await session.get(DeadLetter, dead_letter_id)
        if letter is None or letter.resolved_at is not None or letter.shop_id is None:
            return Outcome(404, "not_found", f"no open dead letter {dead_letter_id}")
        shop_id = letter.shop_id
        delivery = Delivery(
            source=letter.source,
            topic=letter.topic,
            delivery_id=letter.delivery_id or f"dead-letter:{letter.id}",
            body=letter.body,
            headers=letter.headers,
        )
    try:
        async with unit_of_work(state.sessionmaker) as session:
            shop = await session.get(Shop, shop_id)
            assert shop is not None
            handler = handlers_for(delivery.source).get(delivery.topic)
            if handler is None:
                raise UnhandledTopic(f"Stamp has no handler for topic {delivery.topic!r}")
            await handler(HandlerContext(state, session, shop, delivery), parse_json(delivery.body))
            now = utcnow()
            await session.execute(
                update(DeadLetter)
                .where(DeadLetter.id == dead_letter_id)
                .values(resolved_at=now, last_attempt_at=now, attempts=DeadLetter.attempts + 1)
            )
            await session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.shop_id == shop_id,
                    WebhookDelivery.source == delivery.source,
                    WebhookDelivery.delivery_id == delivery.delivery_id,
                )
                .values(outcome="replayed")
            )
        return Outcome(200, "processed")
    except Exception as exc:
        if is_transient(exc):
            return Outcome(503, "retry", str(exc))
        async with unit_of_work(state.sessionmaker) as session:
            await session.execute(
                update(DeadLetter)
                .where(DeadLetter.id == dead_letter_id)
                .values(
                    attempts=DeadLetter.attempts + 1,
                    last_attempt_at=utcnow(),
                    error=f"{type(exc).__name__}: {exc}"[:4000],
                )
            )
        return Outcome(200, "dead_letter", f"{type(exc).__name__}: {exc}")


async def open_dead_letter_ids(state: State, shop_id: int | None = None) -> list[int]:
    async with state.sessionmaker() as session:
        query = select(DeadLetter.id).where(DeadLetter.resolved_at.is_(None))
        if shop_id is not None:
            query = query.where(DeadLetter.shop_id == shop_id)
        result = await session.execute(query.order_by(DeadLetter.id))
        return list(result.scalars())


async def purge_stored_bodies(state: State, retention_days: int) -> int:
    """Drop webhook bodies older than the retention period; the delivery ids stay for dedupe."""
    cutoff = utcnow() - timedelta(days=retention_days)
    async with unit_of_work(state.sessionmaker) as session:
        result = await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.received_at < cutoff, WebhookDelivery.body.is_not(None))
            .values(body=None)
        )
        resolved = await session.execute(
            delete(DeadLetter).where(
                DeadLetter.resolved_at.is_not(None), DeadLetter.resolved_at < cutoff
            )
        )
    return int(result.rowcount or 0) + int(resolved.rowcount or 0)  # type: ignore[attr-defined]
