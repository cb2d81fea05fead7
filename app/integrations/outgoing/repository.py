"""SQL for webhook subscriptions, their deliveries and the outbox they read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import dialect_insert
from app.models import (
    DeliveryStatus,
    Member,
    MemberEvent,
    OutgoingDelivery,
    Shop,
    ShopStatus,
    SubscriptionStatus,
    WebhookSubscription,
)
from app.models.base import utcnow


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A delivery to attempt now, with what its body is built from."""

    delivery: OutgoingDelivery
    subscription: WebhookSubscription
    event: MemberEvent
    member: Member


class OutgoingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- subscriptions --------------------------------------------------------------------

    async def subscription(self, shop_id: int, subscription_id: int) -> WebhookSubscription | None:
        result = await self.session.execute(
            select(WebhookSubscription)
            .where(
                WebhookSubscription.shop_id == shop_id,
                WebhookSubscription.id == subscription_id,
                WebhookSubscription.status != SubscriptionStatus.deleted,
            )
            .execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def subscriptions_page(
        self, shop_id: int, limit: int, before: int | None
    ) -> list[WebhookSubscription]:
        query = select(WebhookSubscription).where(
            WebhookSubscription.shop_id == shop_id,
            WebhookSubscription.status != SubscriptionStatus.deleted,
        )
        if before is not None:
            query = query.where(WebhookSubscription.id < before)
        result = await self.session.execute(
            query.order_by(WebhookSubscription.id.desc()).limit(limit)
        )
        return list(result.scalars())

    async def active_subscriptions(self, shop_id: int) -> list[WebhookSubscription]:
        result = await self.session.execute(
            select(WebhookSubscription)
            .where(
                WebhookSubscription.shop_id == shop_id,
                WebhookSubscription.status == SubscriptionStatus.active,
            )
            .order_by(WebhookSubscription.id)
        )
        return list(result.scalars())

    async def shops_with_active_subscriptions(self) -> list[int]:
        result = await self.session.execute(
            select(WebhookSubscription.shop_id)
            .join(Shop, Shop.id == WebhookSubscription.shop_id)
            .where(
                WebhookSubscription.status == SubscriptionStatus.active,
                Shop.status == ShopStatus.installed,
            )
            .distinct()
            .order_by(WebhookSubscription.shop_id)
        )
        return list(result.scalars())

    async def max_event_id(self, shop_id: int) -> int:
        query = select(func.max(MemberEvent.id)).where(MemberEvent.shop_id == shop_id)
        return int(await self.session.scalar(query) or 0)

    async def disable(self, subscription_id: int, reason: str) -> None:
        now = utcnow()
        await self.session.execute(
            update(WebhookSubscription)
            .where(
                WebhookSubscription.id == subscription_id,
                WebhookSubscription.status == SubscriptionStatus.active,
            )
            .values(
                status=SubscriptionStatus.disabled,
                disabled_reason=reason[:2000],
                disabled_at=now,
                updated_at=now,
            )
        )

    # --- fan-out: outbox events → delivery rows -------------------------------------------

    async def undelivered_events(
        self, subscription: WebhookSubscription, names: Sequence[str], limit: int
    ) -> list[tuple[int, str, datetime]]:
        """Events above the cursor this subscription wants and has no delivery row for."""
        result = await self.session.execute(
            select(MemberEvent.id, MemberEvent.name, MemberEvent.created_at)
            .where(
                MemberEvent.shop_id == subscription.shop_id,
                MemberEvent.id > subscription.event_cursor,
                MemberEvent.name.in_(names),
                ~exists().where(
                    OutgoingDelivery.subscription_id == subscription.id,
                    OutgoingDelivery.member_event_id == MemberEvent.id,
                ),
            )
            .order_by(MemberEvent.id)
            .limit(limit)
        )
        return [(row.id, row.name, row.created_at) for row in result]

    async def add_deliveries(
        self, shop_id: int, subscription_id: int, rows: Sequence[Any], now: datetime
    ) -> int:
        """One pending delivery per (subscription, event), due at `now`; a repeat is a no-op."""
        if not rows:
            return 0
        statement = (
            dialect_insert(self.session)(OutgoingDelivery)
            .on_conflict_do_nothing(index_elements=["subscription_id", "member_event_id"])
            .returning(OutgoingDelivery.id)
        )
        values = [
            {
                "shop_id": shop_id,
                "subscription_id": subscription_id,
                "member_event_id": event_id,
                "event_type": event_type,
                "status": DeliveryStatus.pending,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for event_id, event_type in rows
        ]
        inserted = 0
        for value in values:
            result = await self.session.execute(statement.values(**value))
            inserted += result.scalar_one_or_none() is not None
        return inserted

    async def settled_event_id(
        self, subscription: WebhookSubscription, settled_before: datetime
    ) -> int | None:
        """The highest event id the cursor may pass: old enough that no slower
        transaction can still commit an event below it."""
        return await self.session.scalar(
            select(func.max(MemberEvent.id)).where(
                MemberEvent.shop_id == subscription.shop_id,
                MemberEvent.id > subscription.event_cursor,
                MemberEvent.created_at < settled_before,
            )
        )

    async def advance_cursor(self, subscription_id: int, cursor: int) -> None:
        await self.session.execute(
            update(WebhookSubscription)
            .where(
                WebhookSubscription.id == subscription_id,
                WebhookSubscription.event_cursor < cursor,
            )
            .values(event_cursor=cursor)
        )

    # --- attempts -------------------------------------------------------------------------

    async def due(self, shop_id: int, now: datetime, limit: int) -> list[DueDelivery]:
        result = await self.session.execute(
            select(OutgoingDelivery, WebhookSubscription, MemberEvent, Member)
            .join(WebhookSubscription, WebhookSubscription.id == OutgoingDelivery.subscription_id)
            .join(MemberEvent, MemberEvent.id == OutgoingDelivery.member_event_id)
            .join(Member, Member.id == MemberEvent.member_id)
            .where(
                OutgoingDelivery.shop_id == shop_id,
                OutgoingDelivery.status == DeliveryStatus.pending,
                OutgoingDelivery.next_attempt_at <= now,
                WebhookSubscription.status == SubscriptionStatus.active,
            )
            .order_by(OutgoingDelivery.id)
            .limit(limit)
        )
        return [DueDelivery(*row) for row in result.all()]

    async def claim(self, delivery_id: int, seen: datetime | None, until: datetime) -> bool:
        """Hold a delivery for this attempt; False when another worker took it first."""
        result = await self.session.execute(
            update(OutgoingDelivery)
            .where(
                OutgoingDelivery.id == delivery_id,
                OutgoingDelivery.status == DeliveryStatus.pending,
                OutgoingDelivery.next_attempt_at == seen,
            )
            .values(next_attempt_at=until)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def record_attempt(self, delivery_id: int, **values: Any) -> None:
        await self.session.execute(
            update(OutgoingDelivery).where(OutgoingDelivery.id == delivery_id).values(**values)
        )

    async def delivery(self, subscription_id: int, delivery_id: int) -> OutgoingDelivery | None:
        result = await self.session.execute(
            select(OutgoingDelivery)
            .where(
                OutgoingDelivery.subscription_id == subscription_id,
                OutgoingDelivery.id == delivery_id,
            )
            .execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def deliveries_page(
        self, subscription_id: int, limit: int, before: int | None
    ) -> list[OutgoingDelivery]:
        query = select(OutgoingDelivery).where(OutgoingDelivery.subscription_id == subscription_id)
        if before is not None:
            query = query.where(OutgoingDelivery.id < before)
        result = await self.session.execute(query.order_by(OutgoingDelivery.id.desc()).limit(limit))
        return list(result.scalars())

    async def purge_delivered(self, before: datetime) -> int:
        """Drop delivered rows older than `before` that the subscription's cursor has
        passed (so fan-out can never recreate them); pending and failed rows stay."""
        cursor = (
            select(WebhookSubscription.event_cursor)
            .where(WebhookSubscription.id == OutgoingDelivery.subscription_id)
            .scalar_subquery()
        )
        result = await self.session.execute(
            delete(OutgoingDelivery).where(
                OutgoingDelivery.status == DeliveryStatus.delivered,
                OutgoingDelivery.delivered_at < before,
                OutgoingDelivery.member_event_id <= cursor,
            )
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
