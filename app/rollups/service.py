"""Keep the daily points rollup equal to the ledger: the ledger service calls these in the
posting's own transaction (one upsert per entry), and `rebuild` recomputes a shop from
scratch (the backfill, and the repair if a rollup is ever suspected)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.rollups.repository import RollupRepository
from app.rollups.rules import contribution, slot, utc_day


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
        await RollupRepository(session).add(
            shop_id, utc_day(created_at), slot(member_id), issued, redeemed
        )


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
        await RollupRepository(session).add(
            shop_id, utc_day(created_at), slot(member_id), -issued, 0
        )


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
