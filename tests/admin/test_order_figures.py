"""The cohorts and revenue per day the database folds equal a count from scratch."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.repository import AdminRepository, Cohort, DayRow
from app.models import Order
from app.settings import Settings
from tests.builders import create_member, create_shop

START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 3, 8, tzinfo=UTC)


def from_scratch(
    orders: list[Order], accounts: dict[int, bool], start: datetime, end: datetime
) -> tuple[dict[bool, Cohort], dict[date, list[Decimal]]]:
    counted = [
        o
        for o in orders
        if not o.is_test and o.cancelled_at is None and o.placed_at and start <= o.placed_at < end
    ]
    per_member: dict[int, list[Decimal]] = defaultdict(list)
    cohorts = {flag: Cohort(0, 0, 0, Decimal("0.00")) for flag in (True, False)}
    days: dict[date, list[Decimal]] = defaultdict(lambda: [Decimal("0.00"), Decimal("0.00")])
    for order in counted:
        assert order.placed_at is not None
        flag = order.member_id is not None and accounts[order.member_id]
        days[order.placed_at.astimezone(UTC).date()][0 if flag else 1] += order.total_amount
        if order.member_id is None:
            old = cohorts[False]
            cohorts[False] = Cohort(
                old.customers + 1,
                old.repeat_customers,
                old.orders + 1,
                old.revenue + order.total_amount,
            )
        else:
            per_member[order.member_id].append(order.total_amount)
    for member_id, totals in per_member.items():
        old = cohorts[accounts[member_id]]
        cohorts[accounts[member_id]] = Cohort(
            old.customers + 1,
            old.repeat_customers + (len(totals) >= 2),
            old.orders + len(totals),
            old.revenue + sum(totals, Decimal(0)),
        )
    return cohorts, days


async def test_cohorts_and_revenue_days_equal_a_count_from_scratch(
    session: AsyncSession, settings: Settings
) -> None:
    rng = random.Random(5)
    shop = await create_shop(session, settings)
    members = [
        await create_member(
            session, shop, email=f"m{n}@example.com", customer_id=str(n), is_account=n % 3 != 0
        )
        for n in range(12)
    ]
    orders: list[Order] = []
    for number in range(200):
        owner = rng.choice([*members, None])
        placed = START + timedelta(seconds=rng.randrange(-86_400, 9 * 86_400))
        order = Order(
            shop_id=shop.id,
            member_id=owner.id if owner else None,
            order_id=str(number),
            currency="USD",
            merchandise_amount=Decimal(0),
            total_amount=Decimal(rng.randrange(1, 50_000)) / 100,
            is_test=rng.random() < 0.1,
            cancelled_at=placed if rng.random() < 0.1 else None,
            placed_at=placed,
        )
        session.add(order)
        orders.append(order)
    await session.commit()
    accounts = {member.id: member.is_account for member in members}
    repo = AdminRepository(session)

    # Up to 92 days members are looked up one by one; a longer range joins them.
    for start in (START, START - timedelta(days=300)):
        cohorts, days = from_scratch(orders, accounts, start, END)
        figures = await repo.order_figures(shop.id, start, END)

        assert cohorts[True].repeat_customers > 0
        assert cohorts[False].customers > 0
        assert figures.cohorts == cohorts
        assert figures.revenue_days == [DayRow(day, tuple(days[day])) for day in sorted(days)]
