"""SQL for the ledger: append entries, move cached balances atomically, and sum them.

Balances on the member row are caches of the entries and change only here, in the same
transaction as the entry, by `SET x = x + :delta`; never read-modify-write in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    ScalarSelect,
    Select,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from app.db import (
    dialect_insert,
    dialect_name,
    in_list,
    insert_ignoring_conflicts,
    insert_rows_ignoring_conflicts,
)
from app.models import Base, EntryStatus, LedgerEntry, Member, Order, OrderRefund
from app.models.base import utcnow
from app.program.config import ProgramConfig, TierBasis
from app.program.rules import window_start

# Kinds that count as "earned" (towards tiers and lifetime points), with their reversals.
EARNING_KINDS = ("earn", "referral", "review", "signup", "birthday", "custom", "import")
TIER_KINDS = ("earn", "referral", "review", "signup", "birthday", "custom", "reverse")


def tier_window_filter(
    config: ProgramConfig, now: datetime | None = None
) -> tuple[bool, dict[str, Any]] | None:
    """What a tier-window sum needs: whether the window has a start, and its parameters
    (None when tiers count money spent, not points)."""
    if config.tiers.basis is TierBasis.amount_spent:
        return None
    start = window_start(config.tiers.window, now or utcnow())
    return (start is not None, {} if start is None else {"window_start": start})


def tier_points_expression(
    member_id: ColumnElement[int] | InstrumentedAttribute[int], bounded: bool
) -> ScalarSelect[Any]:
    """The tier-window sum for `member_id` as a scalar subquery, with a `window_start`
    bind parameter when `bounded`. A subquery, so a caller can read a member and their
    window points in one statement (`member_id` may be the outer query's `members.id`)."""
    conditions = [
        LedgerEntry.member_id == member_id,
        LedgerEntry.status == EntryStatus.available,
        or_(
            LedgerEntry.kind.in_(TIER_KINDS),
            and_(LedgerEntry.kind == "adjust", LedgerEntry.points > 0),
        ),
    ]
    if bounded:
        # Points count from when they became spendable, as in `rules.tier_points`.
        effective_at = func.coalesce(LedgerEntry.available_at, LedgerEntry.created_at)
        conditions.append(effective_at >= bindparam("window_start"))
    return (
        select(func.coalesce(func.sum(LedgerEntry.points), 0)).where(*conditions).scalar_subquery()
    )


@cache
def _move_balance_statement(columns: tuple[str, ...]) -> Any:
    """`SET x = x + :x` for each moved balance; never read-modify-write in Python."""
    table = Base.metadata.tables[Member.__tablename__]
    values: dict[str, Any] = {"updated_at": bindparam("now"), "sync_dirty_at": bindparam("now")}
    for name in columns:
        values[name] = table.c[name] + bindparam(f"delta_{name}")
    return update(table).where(table.c.id == bindparam("member_id")).values(values)


@cache
def _tier_points_statement(bounded: bool) -> Select[Any]:
    return select(tier_points_expression(bindparam("member_id"), bounded))


@dataclass(frozen=True, slots=True)
class BalanceDelta:
    available: int = 0
    pending: int = 0
    lifetime: int = 0


def _changes(delta: BalanceDelta) -> dict[str, int]:
    """The member columns a delta moves, by name (zero moves are left out)."""
    return {
        name: points
        for name, points in (
            ("points_balance", delta.available),
            ("pending_points", delta.pending),
            ("lifetime_points", delta.lifetime),
        )
        if points
    }


def lifetime_delta(kind: str, points: int) -> int:
    """Lifetime points: everything earned, net of reversals; spending and expiry never count."""
    if kind in EARNING_KINDS or kind == "reverse":
        return points
    if kind == "adjust" and points > 0:
        return points
    return 0


class LedgerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _insert(self) -> Any:
        return dialect_insert(self.session)

    async def append(self, values: dict[str, Any]) -> int | None:
        """Insert an entry unless its idempotency key exists; the new id, or None if seen."""
        values.setdefault("created_at", utcnow())
        # Core INSERT: cheaper than the ORM-enabled form.
        table = Base.metadata.tables[LedgerEntry.__tablename__]
        statement = insert_ignoring_conflicts(self.session, table, ("shop_id", "idempotency_key"))
        result = await self.session.execute(statement, values)
        return result.scalar_one_or_none()

    async def append_many(self, rows: list[dict[str, Any]]) -> set[str]:
        """Insert many entries in one statement; the idempotency keys that were new."""
        if not rows:
            return set()
        table = Base.metadata.tables[LedgerEntry.__tablename__]
        result = await insert_rows_ignoring_conflicts(
            self.session, table, rows, ("shop_id", "idempotency_key"), ("idempotency_key",)
        )
        return set(result.scalars())

    async def move_balances(self, deltas: list[tuple[int, BalanceDelta]]) -> None:
        """`move_balance` for many members, one executemany per shape of change, in member
        order (two transactions moving the same members lock them in the same order)."""
        now = utcnow()
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for member_id, delta in sorted(deltas, key=lambda pair: pair[0]):
            changes = _changes(delta)
            if changes:
                shapes.setdefault(tuple(changes), []).append(
                    {"member_id": member_id, "now": now}
                    | {f"delta_{name}": points for name, points in changes.items()}
                )
        for columns, parameters in shapes.items():
            await self.session.execute(_move_balance_statement(columns), parameters)
        for member_id, delta in deltas:
            self._sync_loaded(member_id, _changes(delta), now)

    async def move_balance(self, member_id: int, delta: BalanceDelta) -> None:
        now = utcnow()
        changes = _changes(delta)
        await self.session.execute(
            _move_balance_statement(tuple(changes)),
            {"member_id": member_id, "now": now, **{f"delta_{n}": p for n, p in changes.items()}},
        )
        self._sync_loaded(member_id, changes, now)

    def _sync_loaded(self, member_id: int, changes: dict[str, int], now: datetime) -> None:
        """The UPDATE is Core (built once); bring a loaded member up to date the way the ORM
        would, without marking it dirty (a flush must never write a balance back)."""
        member = self.session.identity_map.get(identity_key(Member, member_id))
        if member is not None:
            loaded = member.__dict__
            for name, points in changes.items():
                if name in loaded:
                    set_committed_value(member, name, loaded[name] + points)
            for name in ("updated_at", "sync_dirty_at"):
                if name in loaded:
                    set_committed_value(member, name, now)

    async def spend(self, member_id: int, cost: int) -> bool:
        """Take `cost` points only if the balance covers them: the guard is in the UPDATE."""
        result = await self.session.execute(
            update(Member)
            .where(Member.id == member_id, Member.points_balance >= cost)
            .values(
                points_balance=Member.points_balance - cost,
                updated_at=utcnow(),
                sync_dirty_at=utcnow(),
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def entry_by_key(self, shop_id: int, key: str) -> LedgerEntry | None:
        result = await self.session.execute(
            select(LedgerEntry).where(
                LedgerEntry.shop_id == shop_id, LedgerEntry.idempotency_key == key
            )
        )
        return result.scalar_one_or_none()

    async def entries_for_source(
        self, shop_id: int, source_type: str, source_id: str
    ) -> list[LedgerEntry]:
        result = await self.session.execute(
            select(LedgerEntry)
            .where(
                LedgerEntry.shop_id == shop_id,
                LedgerEntry.source_type == source_type,
                LedgerEntry.source_id == source_id,
            )
            .order_by(LedgerEntry.id)
        )
        return list(result.scalars())

    async def set_status(self, entry_id: int, old: str, new: str) -> bool:
        """Move an entry pending → available or pending → cancelled, once."""
        result = await self.session.execute(
            update(LedgerEntry)
            .where(LedgerEntry.id == entry_id, LedgerEntry.status == old)
            .values(status=new)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def tier_points(
        self,
        member_id: int,
        config: ProgramConfig,
        now: datetime | None = None,
        *,
        clamp: bool = True,
    ) -> int:
        """Points earned inside the tier window: earning entries minus their reversals."""
        window = tier_window_filter(config, now)
        if window is None:
            return 0
        bounded, params = window
        total = await self.session.scalar(
            _tier_points_statement(bounded), {"member_id": member_id, **params}
        )
        return max(int(total or 0), 0) if clamp else int(total or 0)

    async def recomputed_balances(self, shop_id: int | None = None) -> list[Any]:
        """Per member: cached balances beside the sums of their entries (for `ledger verify`)."""
        entry_sums = (
            select(
                LedgerEntry.member_id.label("member_id"),
                func.sum(
                    case((LedgerEntry.status == EntryStatus.available, LedgerEntry.points), else_=0)
                ).label("available"),
                func.sum(
                    case((LedgerEntry.status == EntryStatus.pending, LedgerEntry.points), else_=0)
                ).label("pending"),
                func.sum(
                    case(
                        (
                            and_(
                                LedgerEntry.status == EntryStatus.available,
                                or_(
                                    LedgerEntry.kind.in_((*EARNING_KINDS, "reverse")),
                                    and_(LedgerEntry.kind == "adjust", LedgerEntry.points > 0),
                                ),
                            ),
                            LedgerEntry.points,
                        ),
                        else_=0,
                    )
                ).label("lifetime"),
            )
            .group_by(LedgerEntry.member_id)
            .subquery()
        )
        query = select(
            Member.id,
            Member.shop_id,
            Member.customer_id,
            Member.points_balance,
            Member.pending_points,
            Member.lifetime_points,
            func.coalesce(entry_sums.c.available, 0).label("available"),
            func.coalesce(entry_sums.c.pending, 0).label("pending"),
            func.coalesce(entry_sums.c.lifetime, 0).label("lifetime"),
        ).outerjoin(entry_sums, entry_sums.c.member_id == Member.id)
        if shop_id is not None:
            query = query.where(Member.shop_id == shop_id)
        result = await self.session.execute(query.order_by(Member.id))
        return list(result)


class OrderRepository:
    """Orders written many at a time (the batched earning path)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_many(self, rows: list[dict[str, Any]]) -> set[str]:
        """Insert orders Stamp has not seen; the order ids that were new."""
        if not rows:
            return set()
        table = Base.metadata.tables[Order.__tablename__]
        result = await insert_rows_ignoring_conflicts(
            self.session, table, rows, ("shop_id", "order_id"), ("order_id",)
        )
        return set(result.scalars())

    async def members_of(self, shop_id: int, order_ids: list[str]) -> dict[str, int | None]:
        """Which of these orders Stamp knows, with the member each belongs to (or None)."""
        result = await self.session.execute(
            _orders_and_members(dialect_name(self.session)),
            {"shop_id": shop_id, "order_ids": order_ids},
        )
        return {order_id: member_id for order_id, member_id in result}

    async def refunded_before(self, shop_id: int, order_ids: list[str]) -> set[str]:
        """Which of these orders already have refunds recorded (they arrived first)."""
        result = await self.session.execute(
            _orders_with_refunds(dialect_name(self.session)),
            {"shop_id": shop_id, "order_ids": order_ids},
        )
        return set(result.scalars())


@cache
def _orders_and_members(dialect: str) -> Select[str, int | None]:
    return select(Order.order_id, Order.member_id).where(
        Order.shop_id == bindparam("shop_id"),
        in_list(dialect, Order.order_id, "order_ids"),
    )


@cache
def _orders_with_refunds(dialect: str) -> Select[Any]:
    return (
        select(OrderRefund.order_id)
        .where(
            OrderRefund.shop_id == bindparam("shop_id"),
            in_list(dialect, OrderRefund.order_id, "order_ids"),
        )
        .distinct()
    )


class ActivityRepository:
    """Reading a member's entries, newest first, a page at a time."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def page(self, member_id: int, limit: int, before_id: int | None) -> list[LedgerEntry]:
        query = select(LedgerEntry).where(LedgerEntry.member_id == member_id)
        if before_id is not None:
            query = query.where(LedgerEntry.id < before_id)
        result = await self.session.execute(query.order_by(LedgerEntry.id.desc()).limit(limit))
        return list(result.scalars())

    async def custom_history(self, member_id: int, action: str) -> tuple[int, datetime | None]:
        """How often a member was rewarded for a custom action, and when last."""
        row = (
            await self.session.execute(
                select(func.count(), func.max(LedgerEntry.created_at)).where(
                    LedgerEntry.member_id == member_id,
                    LedgerEntry.kind == "custom",
                    LedgerEntry.source_id == action,
                )
            )
        ).one()
        return int(row[0]), row[1]
