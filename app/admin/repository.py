"""SQL the admin pages need beyond what the domain repositories offer: analytics, search,
dead letters, version history. Every query is scoped by shop id; each page runs a handful
of aggregate queries, never one per row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, literal, or_, select
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
class OrderDay:
    """A customer's orders on one day; `member_id` None for orders without a member."""

    day: date
    member_id: int | None
    is_member: bool
    orders: int
    revenue: Decimal


@dataclass(frozen=True, slots=True)
class DayRow:
    day: date
    values: tuple[int | Decimal, ...]


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

    async def order_days(self, shop_id: int, start: datetime, end: datetime) -> list[OrderDay]:
        """Orders in the range per day and customer: one pass that feeds both the cohorts
        (members vs others) and the revenue chart.

        The orders are grouped first and each group looks up its member by primary key, so
        the few thousand customers of a range never make the database read every member.
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
            .subquery()
        )
        is_member = (
            select(Member.is_account).where(Member.id == grouped.c.member_id).scalar_subquery()
        )
        rows = await self.session.execute(
            select(
                grouped.c.day,
                grouped.c.member_id,
                func.coalesce(is_member, literal(False)),
                grouped.c.orders,
                grouped.c.revenue,
            )
        )
        return [
            OrderDay(self._as_date(d), member_id, bool(flag), int(count), money(revenue))
            for d, member_id, flag, count, revenue in rows
        ]

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
