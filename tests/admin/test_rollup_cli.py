"""`stamp admin rebuild-rollups`: entries loaded around the ledger service get counted."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from app.models import LedgerEntry
from app.rollups import service as rollups
from app.settings import Settings
from tests.builders import create_member, create_shop
from tests.cli.test_commands import run, runner  # noqa: F401 - the fixture

DAY = datetime(2026, 3, 2, 23, 59, 59, tzinfo=UTC)


async def test_rebuild_counts_entries_written_straight_into_the_table(
    runner: CliRunner,  # noqa: F811
    session: AsyncSession,
    settings: Settings,
) -> None:
    shop = await create_shop(session, settings)
    member = await create_member(session, shop, email="ada@example.com")
    shop_id = shop.id
    rows = [
        {"points": 300, "kind": "earn", "status": "available", "idempotency_key": "a"},
        {"points": 200, "kind": "earn", "status": "cancelled", "idempotency_key": "b"},
        {"points": -120, "kind": "redeem", "status": "available", "idempotency_key": "c"},
    ]
    await session.execute(
        insert(LedgerEntry),
        [{**row, "shop_id": shop_id, "member_id": member.id, "created_at": DAY} for row in rows],
    )
    await session.commit()
    assert await rollups.points_days(session, shop_id, date(2026, 3, 1), date(2026, 3, 3)) == []

    code, output = await run(runner, "admin", "rebuild-rollups")

    assert code == 0
    assert output.strip() == "Rebuilt the daily points rollup of 1 shop(s)."
    await session.rollback()
    assert await rollups.points_days(session, shop_id, date(2026, 3, 1), date(2026, 3, 3)) == [
        (date(2026, 3, 2), 300, 120)
    ]
