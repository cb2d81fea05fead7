"""SQL the admin pages need beyond what the domain repositories offer: analytics, search,
dead letters, version history. Every query is scoped by shop id; each page runs a handful
of aggregate queries, never one per row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, literal, null, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    DeadLetter,
    IntegrationConnection,
    Member,
    Order,
    ProgramVersion,
    Referral,
)
from app.rollups.repository import RollupRepository

REFERRAL_REVENUE_STATUSES = ("qualified", "completed")
CENT = Decimal("0.01")
# Up to this range the home page looks members up one by one (PostgreSQL measured:
# 30 days of 200k orders over two years, 7k customers, about 4x faster than a hash join
# over 100k members; 366 days, 86k customers, about 4x slower).
LOOKUP_RANGE = timedelta(days=92)


def money(value: Any) -> Decimal:
    """A summed amount as Decimal to the cent, for display (PostgreSQL sums NUMERIC exactly;
    SQLite sums its text amounts as numbers, so the cent rounding also absorbs float error)."""
    if value is None:
        return Decimal("0.00")
    return Decimal(str(value)).quantize(CENT)


@dataclass(frozen=True, slots=True)
class PointsTotals:
    issued: int
    redeemed: int


@dataclass(frozen=True, slots=True)
class Balances:
    members: int
    outstanding: int
    pending: int


@dataclass(frozen=True, slots=True)
class Cohort:
    """Customers who ordered in the range, members (store accounts) or not."""

    customers: int
    repeat_customers: int
    orders: int
    revenue: Decimal


@dataclass(frozen=True, slots=True)
class DayRow:
    day: date
    values: tuple[int | Decimal, ...]


@dataclass(frozen=True, slots=True)
class OrderFigures:
    """Cohorts by membership (True: members with a store account) and revenue per day
    (members, then everyone else)."""

    cohorts: dict[bool, Cohort]
    revenue_days: list[DayRow]


class AdminRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _day(self, column: Any) -> Any:
        """The UTC calendar day of a timestamp column, on either database."""
        if self.session.get_bind().dialect.name == "postgresql":
            return func.date(func.timezone("UTC", column))
        return func.date(column)

    @staticmethod
    def _as_date(value: Any) -> date:
        return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])

    # --- analytics ------------------------------------------------------------------------

    async def balances(self, shop_id: int) -> Balances:
        row = (
            await self.session.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(Member.points_balance), 0),
                    func.coalesce(func.sum(Member.pending_points), 0),
                ).where(Member.shop_id == shop_id, Member.redacted_at.is_(None))
            )
        ).one()
        return Balances(int(row[0]), int(row[1]), int(row[2]))

    async def points_by_day(self, shop_id: int, first: date, last: date) -> list[DayRow]:
        """Issued and redeemed per day, from the daily rollup (not the entries themselves)."""
        rows = await RollupRepository(self.session).days(shop_id, first, last)
        return [DayRow(day, (issued, redeemed)) for day, issued, redeemed in rows]

    async def new_members_by_day(
        self, shop_id: int, start: datetime, end: datetime
    ) -> list[DayRow]:
        day = self._day(Member.created_at).label("day")
        rows = await self.session.execute(
            select(day, func.count())
            .where(Member.shop_id == shop_id, Member.created_at >= start, Member.created_at < end)
            .group_by(day)
            .order_by(day)
        )
        return [DayRow(self._as_date(d), (int(n),)) for d, n in rows]

    def _orders_in(self, shop_id: int, start: datetime, end: datetime) -> Any:
        return and_(
            Order.shop_id == shop_id,
            Order.is_test.is_(False),
            Order.cancelled_at.is_(None),
            Order.placed_at >= start,
            Order.placed_at < end,
        )

    async def order_figures(self, shop_id: int, start: datetime, end: datetime) -> OrderFigures:
        """The cohorts (members vs others) and the revenue per day, in one statement.

        Orders are grouped per day and customer first and each group looks up its member by
        primary key, so a range's few thousand customers never make the database read every
        member; the database then folds the groups into a few rows (one per day and side,
        one per cohort) instead of handing thousands of rows to Python.
        """
        day = self._day(Order.placed_at).label("day")
        grouped = (
            select(
                day,
                Order.member_id.label("member_id"),
                func.count().label("orders"),
                func.sum(Order.total_amount).label("revenue"),
            )
            .where(self._orders_in(shop_id, start, end))
            .group_by(day, Order.member_id)
            .cte("grouped")
        )
        if end - start <= LOOKUP_RANGE:
            account = select(Member.is_account).where(Member.id == grouped.c.member_id)
            flagged = select(
                grouped, func.coalesce(account.scalar_subquery(), literal(False)).label("flag")
            ).cte("flagged")
        else:
            # A long range's customers are a good share of all members: one pass over the
            # members (a hash join) beats a primary-key probe per customer.
            flagged = (
                select(grouped, func.coalesce(Member.is_account, literal(False)).label("flag"))
                .outerjoin(Member, Member.id == grouped.c.member_id)
                .cte("flagged")
            )
        customers = (
            select(
                flagged.c.member_id,
                flagged.c.flag,
                func.sum(flagged.c.orders).label("orders"),
                func.sum(flagged.c.revenue).label("revenue"),
            )
            .group_by(flagged.c.member_id, flagged.c.flag)
            .cte("customers")
        )
        guest = customers.c.member_id.is_(None)
        per_day = select(
            literal("day").label("part"),
            flagged.c.day,
            flagged.c.flag,
            literal(0).label("customers"),
            literal(0).label("repeat"),
            func.sum(flagged.c.orders),
            func.sum(flagged.c.revenue),
        ).group_by(flagged.c.day, flagged.c.flag)
        # Orders without a member each count as a one-order customer who is not a member.
        per_cohort = select(
            literal("cohort"),
            null(),
            customers.c.flag,
            case((guest, func.sum(customers.c.orders)), else_=func.count()),
            func.sum(case((and_(~guest, customers.c.orders >= 2), 1), else_=0)),
            func.sum(customers.c.orders),
            func.sum(customers.c.revenue),
        ).group_by(customers.c.flag, guest)
        rows = await self.session.execute(union_all(per_day, per_cohort))
        cohorts = {True: Cohort(0, 0, 0, Decimal("0.00")), False: Cohort(0, 0, 0, Decimal("0.00"))}
        days: dict[date, list[Decimal]] = {}
        for part, d, flag, count, repeat, orders, revenue in rows:
            if part == "day":
                sides = days.setdefault(self._as_date(d), [Decimal("0.00"), Decimal("0.00")])
                sides[0 if flag else 1] += money(revenue)
                continue
            old = cohorts[bool(flag)]
            cohorts[bool(flag)] = Cohort(
                old.customers + int(count),
                old.repeat_customers + int(repeat),
                old.orders + int(orders),
                old.revenue + money(revenue),
            )
        revenue_days = [DayRow(d, (days[d][0], days[d][1])) for d in sorted(days)]
        return OrderFigures(cohorts, revenue_days)

    async def referral_revenue(
        self, shop_id: int, start: datetime, end: datetime
    ) -> tuple[int, Decimal]:
        row = (
            await self.session.execute(
                select(func.count(), func.sum(Referral.order_amount)).where(
                    Referral.shop_id == shop_id,
                    Referral.status.in_(REFERRAL_REVENUE_STATUSES),
                    Referral.created_at >= start,
                    Referral.created_at < end,
                )
            )
        ).one()
        return int(row[0]), money(row[1])

    # --- onboarding -------------------------------------------------------------------------

    async def program_reviewed(self, shop_id: int) -> bool:
        """True once anyone but the installer saved a version of the program."""
        found = await self.session.scalar(
            select(ProgramVersion.id)
            .where(ProgramVersion.shop_id == shop_id, ProgramVersion.created_by != "install")
            .limit(1)
        )
        return found is not None

    async def connections(self, shop_id: int) -> dict[str, IntegrationConnection]:
        rows = await self.session.scalars(
            select(IntegrationConnection).where(IntegrationConnection.shop_id == shop_id)
        )
        return {row.kind: row for row in rows}

    # --- members ----------------------------------------------------------------------------

    async def search_members(self, shop_id: int, query: str, limit: int) -> list[Member]:
        """Members whose email or name contains the text (case-insensitive), newest first."""
        query = query.strip()
        statement = select(Member).where(Member.shop_id == shop_id, Member.redacted_at.is_(None))
        if query:
            like = (
                "%"
                + query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                + "%"
            )
            full_name = func.lower(
                func.coalesce(Member.first_name, "") + " " + func.coalesce(Member.last_name, "")
            )
            statement = statement.where(
                or_(
                    func.lower(Member.email).like(like, escape="\\"),
                    full_name.like(like, escape="\\"),
                )
            )
        result = await self.session.scalars(statement.order_by(Member.id.desc()).limit(limit))
        return list(result)

    async def member(self, shop_id: int, member_id: int) -> Member | None:
        return await self.session.scalar(
            select(Member).where(Member.shop_id == shop_id, Member.id == member_id)
        )

    async def members_by_id(self, shop_id: int, ids: set[int]) -> dict[int, Member]:
        if not ids:
            return {}
        rows = await self.session.scalars(
            select(Member).where(Member.shop_id == shop_id, Member.id.in_(ids))
        )
        return {member.id: member for member in rows}

    # --- dead letters -------------------------------------------------------------------------

    async def open_dead_letters(self, shop_id: int, limit: int) -> list[DeadLetter]:
        result = await self.session.scalars(
            select(DeadLetter)
            .where(DeadLetter.shop_id == shop_id, DeadLetter.resolved_at.is_(None))
            .order_by(DeadLetter.id.desc())
            .limit(limit)
        )
        return list(result)

    async def dead_letter(self, shop_id: int, letter_id: int) -> DeadLetter | None:
        return await self.session.scalar(
            select(DeadLetter).where(DeadLetter.shop_id == shop_id, DeadLetter.id == letter_id)
        )

    # --- program history ----------------------------------------------------------------------

    async def versions(self, shop_id: int, limit: int) -> list[ProgramVersion]:
        """The newest versions first, plus the one before the oldest shown (for its diff)."""
        result = await self.session.scalars(
            select(ProgramVersion)
            .where(ProgramVersion.shop_id == shop_id)
            .order_by(ProgramVersion.version.desc())
            .limit(limit + 1)
        )
        return list(result)
