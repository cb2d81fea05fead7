"""SQL of the daily points rollup: one upsert per transaction, a per-shop rebuild, range reads."""

from __future__ import annotations

from datetime import date
from functools import cache
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.db import dialect_name
from app.models import LedgerEntry, PointsDay
from app.rollups.rules import ISSUING_KINDS, SLOTS


@cache
def _upsert(dialect: str) -> Any:
    """Built once per process: the posting hot path runs it on every entry."""
    table: Any = PointsDay.__table__
    statement = (pg_insert if dialect == "postgresql" else sqlite_insert)(table)
    return statement.on_conflict_do_update(
        index_elements=("shop_id", "day", "slot"),
        set_={
            "issued": table.c.issued + statement.excluded.issued,
            "redeemed": table.c.redeemed + statement.excluded.redeemed,
        },
    )


def write_rollup_rows(session: Session, rows: list[tuple[int, date, int, int, int]]) -> None:
    """Add (shop, day, slot, issued, redeemed) rows to the rollup, in one statement.

    Synchronous: it runs inside a commit (`service._write_pending`), where the async
    session's work is already on its own greenlet."""
    session.execute(
        _upsert(dialect_name(session)),
        [{"shop_id": s, "day": d, "slot": n, "issued": i, "redeemed": r} for s, d, n, i, r in rows],
    )


class RollupRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _entry_day(self) -> Any:
        if dialect_name(self.session) == "postgresql":
            return func.date(func.timezone("UTC", LedgerEntry.created_at))
        return func.date(LedgerEntry.created_at)

    async def rebuild(self, shop_id: int) -> None:
        """Replace the shop's rows by a computation from its ledger entries."""
        await self.session.execute(delete(PointsDay).where(PointsDay.shop_id == shop_id))
        day = self._entry_day()
        slot = LedgerEntry.member_id % literal(SLOTS)
        issued = func.coalesce(
            func.sum(
                case(
                    (
                        and_(
                            LedgerEntry.kind.in_(ISSUING_KINDS),
                            LedgerEntry.points > 0,
                            LedgerEntry.status != "cancelled",
                        ),
                        LedgerEntry.points,
                    ),
                    else_=0,
                )
            ),
            0,
        )
        redeemed = func.coalesce(
            func.sum(case((LedgerEntry.kind == "redeem", -LedgerEntry.points), else_=0)), 0
        )
        source = (
            select(literal(shop_id), day, slot, issued, redeemed)
            .where(LedgerEntry.shop_id == shop_id)
            .group_by(day, slot)
        )
        await self.session.execute(
            insert(PointsDay).from_select(["shop_id", "day", "slot", "issued", "redeemed"], source)
        )

    async def days(self, shop_id: int, first: date, last: date) -> list[tuple[date, int, int]]:
        """Issued and redeemed per day from `first` to `last` inclusive, days with rows only."""
        rows = await self.session.execute(
            select(PointsDay.day, func.sum(PointsDay.issued), func.sum(PointsDay.redeemed))
            .where(PointsDay.shop_id == shop_id, PointsDay.day >= first, PointsDay.day <= last)
            .group_by(PointsDay.day)
            .order_by(PointsDay.day)
        )
        return [(day, int(issued), int(redeemed)) for day, issued, redeemed in rows]

    async def shop_ids(self) -> list[int]:
        """Shops that have ledger entries (what a full rebuild walks)."""
        rows = await self.session.scalars(select(LedgerEntry.shop_id).distinct())
        return list(rows)
