"""The retention purge runs daily and honours WEBHOOK_BODY_RETENTION_DAYS."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.maintenance import tasks
from app.models import DeadLetter, WebhookDelivery
from app.models.base import utcnow
from app.settings import Settings
from app.state import State
from tests.builders import create_shop
from tests.conftest import make_settings


def test_the_purge_is_scheduled_daily_at_0317_utc() -> None:
    due = tasks.purge_webhook_bodies.task_class().validate_datetime
    assert due(datetime(2026, 11, 23, 3, 17))
    assert not due(datetime(2026, 11, 23, 4, 17))
    assert not due(datetime(2026, 11, 23, 3, 18))


async def test_the_purge_keeps_what_is_inside_the_configured_retention(
    state: State, session: AsyncSession, settings: Settings
) -> None:
    # given a 7-day retention, deliveries and dead letters either side of it
    state.settings = make_settings(settings.DATABASE_URL, WEBHOOK_BODY_RETENTION_DAYS=7)
    shop = await create_shop(session, settings)
    now = utcnow()
    for name, age in (("old", 8), ("recent", 6)):
        session.add(
            WebhookDelivery(
                shop_id=shop.id, source="shopify", delivery_id=name, topic="orders/paid",
                body=b"{}", received_at=now - timedelta(days=age),
            )
        )  # fmt: skip
    for name, resolved in (("resolved-old", 8), ("resolved-recent", 6), ("open", None)):
        session.add(
            DeadLetter(
                shop_id=shop.id, source="shopify", topic="orders/paid", delivery_id=name,
                headers={}, body=b"{}", error="KeyError",
                resolved_at=now - timedelta(days=resolved) if resolved else None,
            )
        )  # fmt: skip
    await session.commit()

    # when the periodic job's body runs
    purged = await tasks._purge(state)

    # then only the old body and the old resolved dead letter are gone
    await session.rollback()
    bodies = dict(
        (await session.execute(select(WebhookDelivery.delivery_id, WebhookDelivery.body))).all()
    )
    letters = sorted((await session.execute(select(DeadLetter.delivery_id))).scalars())
    assert purged == 2
    assert bodies == {"old": None, "recent": b"{}"}
    assert letters == ["open", "resolved-recent"]
