"""Member events are recorded with their cause, once, for the integrations to send."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import MemberEvent
from app.settings import Settings
from tests.ledger.test_engine import deliver, fixture, installed_shop


async def test_an_order_delivered_three_times_records_one_points_earned_event(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await installed_shop(session, settings)

    for topic in ("orders/create", "orders/paid", "orders/paid"):
        await deliver(client, settings, topic, fixture("orders_paid"))

    await session.rollback()
    events = (await session.execute(select(MemberEvent))).scalars().all()
    assert [
        (e.name, e.unique_id, e.properties["points"], e.properties["kind"]) for e in events
    ] == [("Stamp Points Earned", "order:5912345678901:earn", 72, "earn")]


async def test_refunds_record_no_earned_event(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await installed_shop(session, settings)
    await deliver(client, settings, "orders/paid", fixture("orders_paid"))

    await deliver(client, settings, "refunds/create", fixture("refunds_create"))

    await session.rollback()
    names = [e.name for e in (await session.execute(select(MemberEvent))).scalars()]
    assert names == ["Stamp Points Earned"]
