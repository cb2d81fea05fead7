"""SQL for members."""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Select, and_, bindparam, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import dialect_name, in_list, insert_if_absent, insert_rows_ignoring_conflicts
from app.models import Base, Member
from app.models.base import utcnow
from app.program.config import ProgramConfig


@cache
def _member_with_tier_points(bounded: bool | None) -> Select[Member, Any]:
    """Built once per window shape (None: no points window): statement construction
    costs more than the query on the widget's hot path."""
    from app.ledger.repository import tier_points_expression

    window = literal(0) if bounded is None else tier_points_expression(Member.id, bounded)
    return select(Member, window).where(
        Member.shop_id == bindparam("shop_id"), Member.customer_id == bindparam("customer_id")
    )


@cache
def _with_customer_ids_or_emails(dialect: str, bounded: bool | None) -> Select[Member, Any]:
    from app.ledger.repository import tier_points_expression

    window = literal(0) if bounded is None else tier_points_expression(Member.id, bounded)
    return (
        select(Member, window)
        .where(
            Member.shop_id == bindparam("shop_id"),
            or_(
                in_list(dialect, Member.customer_id, "customer_ids"),
                in_list(dialect, Member.email, "emails"),
            ),
        )
        .order_by(Member.id)
    )


@cache
def _by_customer_id() -> Select[Member]:
    return select(Member).where(
        Member.shop_id == bindparam("shop_id"), Member.customer_id == bindparam("customer_id")
    )


@cache
def _by_customer_id_or_guest_email() -> Select[Member]:
    return (
        select(Member)
        .where(
            Member.shop_id == bindparam("shop_id"),
            or_(
                Member.customer_id == bindparam("customer_id"),
                and_(Member.customer_id.is_(None), Member.email == bindparam("email")),
            ),
        )
        .order_by(Member.id)
    )


def lookup_email(email: str) -> str:
    """How an email is compared when a member is looked up by it."""
    return email.strip().lower()


class MemberRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_customer_id(self, shop_id: int, customer_id: str) -> Member | None:
        result = await self.session.execute(
            _by_customer_id(), {"shop_id": shop_id, "customer_id": customer_id}
        )
        return result.scalar_one_or_none()

    async def by_customer_id_or_guest_email(
        self, shop_id: int, customer_id: str, email: str
    ) -> tuple[Member | None, Member | None]:
        """The customer's member and the guest member with this email, in one statement:
        an order from a customer Stamp has not seen yet may claim the guest's points."""
        result = await self.session.execute(
            _by_customer_id_or_guest_email(),
            {"shop_id": shop_id, "customer_id": customer_id, "email": email},
        )
        by_customer: Member | None = None
        guest: Member | None = None
        for member in result.scalars():
            if member.customer_id == customer_id:
                by_customer = member
            elif member.customer_id is None and guest is None:
                guest = member
        return by_customer, guest

    async def by_customer_id_with_tier_points(
        self, shop_id: int, customer_id: str, config: ProgramConfig
    ) -> tuple[Member, int] | None:
        """The member and their tier-window points (clamped at 0) in one statement."""
        from app.ledger.repository import tier_window_filter

        window = tier_window_filter(config)
        bounded, params = window if window is not None else (None, {})
        row = (
            await self.session.execute(
                _member_with_tier_points(bounded),
                {"shop_id": shop_id, "customer_id": customer_id, **params},
            )
        ).first()
        return None if row is None else (row[0], max(int(row[1] or 0), 0))

    async def with_customer_ids_or_emails(
        self, shop_id: int, customer_ids: list[str], emails: list[str], config: ProgramConfig
    ) -> list[tuple[Member, int]]:
        """Members with any of these customer ids or emails, each with their tier-window
        points (not clamped): what a batch of orders needs, in one query."""
        from app.ledger.repository import tier_window_filter

        window = tier_window_filter(config)
        bounded, params = window if window is not None else (None, {})
        result = await self.session.execute(
            _with_customer_ids_or_emails(dialect_name(self.session), bounded),
            {"shop_id": shop_id, "customer_ids": customer_ids, "emails": emails, **params},
        )
        return [(row[0], int(row[1] or 0)) for row in result]

    async def by_email(self, shop_id: int, email: str) -> list[Member]:
        result = await self.session.execute(
            select(Member)
            .where(Member.shop_id == shop_id, Member.email == lookup_email(email))
            .order_by(Member.id)
        )
        return list(result.scalars())


class MemberWriter:
    """Creating and claiming members; races resolve through the unique indexes."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_if_absent(self, **values: Any) -> Member | None:
        values.setdefault("created_at", utcnow())
        return await insert_if_absent(self.session, Member, **values)

    async def insert_many(self, rows: list[dict[str, Any]]) -> list[tuple[int, str | None, str]]:
        """Insert members in one statement, skipping any whose customer id, guest email or
        referral code is taken; (id, customer id, email) of those inserted."""
        if not rows:
            return []
        table = Base.metadata.tables[Member.__tablename__]
        result = await insert_rows_ignoring_conflicts(
            self.session, table, rows, None, ("id", "customer_id", "email")
        )
        return [(row.id, row.customer_id, row.email) for row in result]

    async def guest_by_email(self, shop_id: int, email: str) -> Member | None:
        result = await self.session.execute(
            select(Member).where(
                Member.shop_id == shop_id, Member.email == email, Member.customer_id.is_(None)
            )
        )
        return result.scalar_one_or_none()
