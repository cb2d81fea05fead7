"""Keep the daily points rollup equal to the ledger: the ledger service calls these in the
posting's own transaction, and `rebuild` recomputes a shop from scratch (the backfill, and
the repair if a rollup is ever suspected).

A transaction's changes are added up in the session and written when it commits, in key
order, with one statement: the rollup rows are the hottest in the database (every posting
of a shop on one day shares 8 of them), so they are locked last, briefly, and always in the
same order, and two transactions can never deadlock on them.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from app.rollups.repository import RollupRepository, write_rollup_rows
from app.rollups.rules import contribution, slot, utc_day

_PENDING = "stamp.rollups"
Key = tuple[int, date, int]


def _add(
    session: AsyncSession, shop_id: int, day: date, member_id: int, issued: int, redeemed: int
) -> None:
    if session.in_nested_transaction():
        # A savepoint rolled back would leave its postings counted: Stamp uses none.
        raise RuntimeError("ledger postings inside a savepoint are not supported")
    pending: dict[Key, tuple[int, int]] = session.info.setdefault(_PENDING, {})
    key = (shop_id, day, slot(member_id))
    before = pending.get(key, (0, 0))
    pending[key] = (before[0] + issued, before[1] + redeemed)


def _write_pending(session: Session) -> None:
    """At commit, inside the transaction: the transaction's rollup changes, one statement,
    after everything else the transaction writes (flushed first)."""
    if session.in_nested_transaction():
        return  # a savepoint released: the outer transaction's commit writes them
    pending: dict[Key, tuple[int, int]] | None = session.info.pop(_PENDING, None)
    if pending:
        session.flush()
        rows = [(*key, issued, redeemed) for key, (issued, redeemed) in sorted(pending.items())]
        write_rollup_rows(session, rows)


def _forget_pending(session: Session, transaction: SessionTransaction) -> None:
    """When the outermost transaction ends (committed, rolled back or closed), nothing of
    it may be written later by another transaction of the same session."""
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


event.listen(Session, "before_commit", _write_pending)
event.listen(Session, "after_transaction_end", _forget_pending)


async def record_entry(
    session: AsyncSession,
    shop_id: int,
    member_id: int,
    created_at: datetime,
    kind: str,
    status: str,
    points: int,
) -> None:
    """Count a new ledger entry on its day (nothing to write if it counts as neither)."""
    issued, redeemed = contribution(kind, status, points)
    if issued or redeemed:
        _add(session, shop_id, utc_day(created_at), member_id, issued, redeemed)


async def record_cancel(
    session: AsyncSession,
    shop_id: int,
    member_id: int,
    created_at: datetime,
    kind: str,
    points: int,
) -> None:
    """A pending entry was cancelled: it no longer counts as issued on its day."""
    issued, _ = contribution(kind, "pending", points)
    if issued:
        _add(session, shop_id, utc_day(created_at), member_id, -issued, 0)


async def rebuild(session: AsyncSession, shop_id: int | None = None) -> list[int]:
    """Recompute the rollup of one shop (or of every shop with entries) from the ledger."""
    repo = RollupRepository(session)
    shops = [shop_id] if shop_id is not None else await repo.shop_ids()
    for one in shops:
        await repo.rebuild(one)
    return shops


async def points_days(
    session: AsyncSession, shop_id: int, first: date, last: date
) -> list[tuple[date, int, int]]:
    return await RollupRepository(session).days(shop_id, first, last)
