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
    query = select(MemberEvent).where(MemberEvent.name == "Stamp Points Earned")
    events = (await session.execute(query)).scalars().all()
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
    assert names == ["Stamp Member Joined", "Stamp Points Earned"]


async def test_a_new_member_records_one_member_joined_event(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given a shop; when Shopify sends customers/create twice for one customer
    await installed_shop(session, settings)
    payload = {"id": 777, "email": "new@example.com", "state": "enabled"}
    for _ in range(2):
        await deliver(client, settings, "customers/create", payload)

    # then one "Stamp Member Joined" (member.created for webhooks) is recorded
    await session.rollback()
    query = select(MemberEvent).where(MemberEvent.name == "Stamp Member Joined")
    events = (await session.execute(query)).scalars().all()
    assert [(e.name, e.unique_id, e.properties) for e in events] == [
        (
            "Stamp Member Joined",
            f"member:{events[0].member_id}:created",
            {"customer_id": "777", "is_account": True},
        )
    ]


async def test_spending_records_points_spent_once(
    session: AsyncSession, settings: Settings
) -> None:
    # given a member with 100 points
    from app.ledger import service as ledger
    from tests.builders import create_member

    shop = await installed_shop(session, settings)
    member = await create_member(session, shop, customer_id="9")
    await ledger.post(session, shop.id, ledger.Posting(member.id, 100, "adjust", "adjust:seed"))

    # when a deduction is made, and repeated with the same key
    for _ in range(2):
        await ledger.adjust(
            session, shop, member, -40, reason="correction", actor="t", idempotency_key="d1"
        )
    await session.commit()

    # then one "Stamp Points Spent" event carries the positive amount
    events = (
        (await session.execute(select(MemberEvent).where(MemberEvent.name == "Stamp Points Spent")))
        .scalars()
        .all()
    )
    assert [(e.unique_id, e.properties) for e in events] == [
        (
            "adjust:d1",
            {
                "points": 40,
                "kind": "adjust",
                "reason": "correction",
                "source_type": "adjustment",
                "source_id": None,
            },
        )
    ]


async def test_importing_existing_customers_records_no_member_joined_event(
    session: AsyncSession, settings: Settings
) -> None:
    # given a shop; when an import creates a member without announcing it
    from app.members.service import member_for_customer

    shop = await installed_shop(session, settings)
    match = await member_for_customer(session, shop, None, "old@example.com", announce=False)
    await session.commit()

    # then the member exists and no event was recorded
    assert match.created is True
    assert (await session.execute(select(MemberEvent))).scalars().all() == []
