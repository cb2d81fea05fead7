"""Webhook subscriptions: create, list, delete, enable, the delivery log and replay.

These are the functions the API (and the admin) call; each takes the caller's session
and only flushes. A subscription starts at the newest outbox event, so subscribing
never floods a receiver with history. The secret is shown once, at creation.
"""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.crypto import new_token
from app.errors import Conflict, NotFound, ValidationFailed
from app.http import check_public_url
from app.integrations.outgoing.repository import OutgoingRepository
from app.integrations.outgoing.schemas import (
    DeliveryOut,
    SubscriptionCreated,
    SubscriptionIn,
    SubscriptionOut,
)
from app.models import (
    DeliveryStatus,
    OutgoingDelivery,
    Shop,
    SubscriptionStatus,
    WebhookSubscription,
)
from app.models.base import utcnow
from app.state import State

MAX_SUBSCRIPTIONS = 50


async def checked_url(state: State, url: str) -> str:
    """The URL, once the SSRF guard accepts it (https, public addresses only)."""
    url = url.strip()
    try:
        httpx.URL(url)
        return await asyncio.to_thread(check_public_url, url, state.settings)
    except (httpx.InvalidURL, ValueError, UnicodeError) as exc:
        raise ValidationFailed("The URL is not a valid web address", code="url_invalid") from exc


async def create_subscription(
    session: AsyncSession, state: State, shop: Shop, body: SubscriptionIn
) -> SubscriptionCreated:
    url = await checked_url(state, body.url)
    repo = OutgoingRepository(session)
    if len(await repo.subscriptions_page(shop.id, MAX_SUBSCRIPTIONS, None)) >= MAX_SUBSCRIPTIONS:
        raise Conflict(
            f"A shop can have at most {MAX_SUBSCRIPTIONS} webhook subscriptions",
            code="too_many_subscriptions",
        )
    secret = "whsec_" + new_token(24)
    now = utcnow()
    subscription = WebhookSubscription(
        shop_id=shop.id,
        url=url,
        events=list(body.events),
        secret_enc=state.cipher.encrypt(secret),
        status=SubscriptionStatus.active,
        event_cursor=await repo.max_event_id(shop.id),
        created_at=now,
        updated_at=now,
    )
    session.add(subscription)
    await session.flush()
    return SubscriptionCreated(**SubscriptionOut.of(subscription).model_dump(), secret=secret)


async def list_subscriptions(
    session: AsyncSession, shop: Shop, limit: int = 50, before: int | None = None
) -> list[SubscriptionOut]:
    """Newest first; deleted subscriptions are not listed."""
    rows = await OutgoingRepository(session).subscriptions_page(shop.id, limit, before)
    return [SubscriptionOut.of(row) for row in rows]


async def get_subscription(
    session: AsyncSession, shop: Shop, subscription_id: int
) -> WebhookSubscription:
    found = await OutgoingRepository(session).subscription(shop.id, subscription_id)
    if found is None:
        raise NotFound("No webhook subscription with that id", code="subscription_not_found")
    return found


async def delete_subscription(session: AsyncSession, shop: Shop, subscription_id: int) -> None:
    """Stop delivering (Zapier's unsubscribe); the delivery log stays readable in the admin."""
    subscription = await get_subscription(session, shop, subscription_id)
    subscription.status = SubscriptionStatus.deleted
    subscription.updated_at = utcnow()
    await session.flush()


async def enable_subscription(
    session: AsyncSession, state: State, shop: Shop, subscription_id: int
) -> SubscriptionOut:
    """Resume a disabled subscription: its pending deliveries are attempted again."""
    subscription = await get_subscription(session, shop, subscription_id)
    await checked_url(state, subscription.url)
    if subscription.status == SubscriptionStatus.disabled:
        subscription.status = SubscriptionStatus.active
        subscription.disabled_reason = None
        subscription.disabled_at = None
        subscription.updated_at = utcnow()
        await session.flush()
        _deliver_after_commit(shop.id)
    return SubscriptionOut.of(subscription)


async def deliveries(
    session: AsyncSession,
    shop: Shop,
    subscription_id: int,
    limit: int = 50,
    before: int | None = None,
) -> list[DeliveryOut]:
    """The delivery log, newest first: status, attempts, last answer, next try."""
    await get_subscription(session, shop, subscription_id)
    rows = await OutgoingRepository(session).deliveries_page(subscription_id, limit, before)
    return [DeliveryOut.of(row) for row in rows]


async def replay(
    session: AsyncSession, shop: Shop, subscription_id: int, delivery_id: int
) -> DeliveryOut:
    """Send a delivery again, with the same event id, and a fresh day of retries."""
    subscription = await get_subscription(session, shop, subscription_id)
    if subscription.status != SubscriptionStatus.active:
        raise Conflict(
            "The subscription is disabled; enable it before replaying its deliveries",
            code="subscription_disabled",
        )
    delivery = await OutgoingRepository(session).delivery(subscription_id, delivery_id)
    if delivery is None:
        raise NotFound("No delivery with that id", code="delivery_not_found")
    _reset(delivery)
    await session.flush()
    _deliver_after_commit(shop.id)
    return DeliveryOut.of(delivery)


def _reset(delivery: OutgoingDelivery) -> None:
    delivery.status = DeliveryStatus.pending
    delivery.attempts = 0
    delivery.first_attempt_at = None
    delivery.next_attempt_at = utcnow()


def _deliver_after_commit(shop_id: int) -> None:
    from app.integrations.outgoing.tasks import deliver_webhooks
    from app.queue import enqueue

    enqueue(deliver_webhooks, shop_id)
