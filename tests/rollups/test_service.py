"""The daily points rollup always equals a from-scratch count of the ledger entries."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.repository import AdminRepository
from app.ledger import service as ledger
from app.models import EntryStatus, LedgerEntry, PointsDay
from app.rollups import service as rollups
from app.rollups.rules import contribution, utc_day
from app.settings import Settings
from tests.builders import create_member, create_shop

ISSUING = ("earn", "referral", "review", "signup", "birthday", "custom", "import", "adjust")
OTHER = ("expire", "reverse")
FIRST = date(2026, 3, 1)


def from_scratch(entries: list[LedgerEntry]) -> dict[date, tuple[int, int]]:
    """Issued and redeemed per UTC day, counted straight from the entries as they are now."""
    days: dict[date, list[int]] = defaultdict(lambda: [0, 0])
    for entry in entries:
        day = entry.created_at.astimezone(UTC).date()
        if entry.kind in ISSUING and entry.points > 0 and entry.status != "cancelled":
            days[day][0] += entry.points
        if entry.kind == "redeem":
            days[day][1] -= entry.points
    return {day: (issued, redeemed) for day, (issued, redeemed) in days.items()}


async def rollup(session: AsyncSession, shop_id: int) -> dict[date, tuple[int, int]]:
    rows = await rollups.points_days(session, shop_id, date(2000, 1, 1), date(2100, 1, 1))
    return {day: (issued, redeemed) for day, issued, redeemed in rows if issued or redeemed}


async def random_ledger(session: AsyncSession, settings: Settings, seed: int) -> int:
    """A shop with random postings, spends and cancellations over ten days, many of them
    a second either side of midnight UTC, some replayed with the same key."""
    rng = random.Random(seed)
    shop = await create_shop(session, settings, domain=f"rollup-{seed}.myshopify.com")
    members = [
        await create_member(session, shop, email=f"m{n}@example.com", customer_id=str(n))
        for n in range(11)
    ]
    pending: list[int] = []
    for _ in range(160):
        member = rng.choice(members)
        midnight = datetime.combine(FIRST + timedelta(days=rng.randrange(10)), datetime.min.time())
        at = midnight.replace(tzinfo=UTC) + timedelta(seconds=rng.choice((-1, 0, 1, 43_200)))
        key = f"k{rng.randrange(140)}"  # some keys repeat: replays must not count twice
        roll = rng.random()
        if roll < 0.6:
            kind = rng.choice(ISSUING + OTHER)
            points = rng.randrange(-50, 400)
            status = rng.choice((EntryStatus.available, EntryStatus.pending))
            if status == EntryStatus.pending and points <= 0:
                status = EntryStatus.available
            entry_id = await ledger.post(
                session,
                shop.id,
                ledger.Posting(member.id, points, kind, key, status=status, created_at=at),
            )
            if entry_id is not None and status == EntryStatus.pending:
                pending.append(entry_id)
        elif roll < 0.8:
            await session.refresh(member)
            if member.points_balance > 0:
                cost = rng.randrange(1, member.points_balance + 1)
                await ledger.spend(
                    session, shop.id, ledger.Posting(member.id, -cost, "redeem", key, created_at=at)
                )
        elif pending:
            entry = await session.get(LedgerEntry, rng.choice(pending))
            assert entry is not None
            await ledger.cancel_pending(session, entry)  # twice for some: the second is a no-op
        await session.commit()
    return shop.id


async def test_the_rollup_equals_a_count_from_scratch_on_random_ledgers(
    session: AsyncSession, settings: Settings
) -> None:
    for seed in (1, 2, 3):
        shop_id = await random_ledger(session, settings, seed)
        entries = list(
            await session.scalars(select(LedgerEntry).where(LedgerEntry.shop_id == shop_id))
        )
        expected = from_scratch(entries)

        assert sum(1 for e in entries if e.status == "cancelled") > 0
        assert await rollup(session, shop_id) == expected


async def test_a_rebuild_gives_the_same_rollup_as_the_postings(
    session: AsyncSession, settings: Settings
) -> None:
    shop_id = await random_ledger(session, settings, 7)
    incremental = await rollup(session, shop_id)
    other_id = await random_ledger(session, settings, 8)
    other = await rollup(session, other_id)

    await session.execute(PointsDay.__table__.delete())
    assert await rollups.rebuild(session) == sorted([shop_id, other_id])
    await session.commit()

    assert await rollup(session, shop_id) == incremental
    assert await rollup(session, other_id) == other
    assert incremental


async def test_the_home_page_reads_the_days_of_its_range_only(
    session: AsyncSession, settings: Settings
) -> None:
    shop_id = await random_ledger(session, settings, 11)
    entries = list(await session.scalars(select(LedgerEntry).where(LedgerEntry.shop_id == shop_id)))
    expected = from_scratch(entries)
    first, last = FIRST + timedelta(days=2), FIRST + timedelta(days=5)

    rows = await AdminRepository(session).points_by_day(shop_id, first, last)

    assert {row.day: row.values for row in rows if any(row.values)} == {
        day: values for day, values in expected.items() if first <= day <= last and any(values)
    }


async def one_member(session: AsyncSession, settings: Settings, name: str) -> tuple[int, int]:
    """(shop id, member id) of a new shop named after `name` with one member."""
    shop = await create_shop(session, settings, domain=f"rollup-{name}.myshopify.com")
    member = await create_member(session, shop, email=f"{name}@example.com", customer_id=name)
    return shop.id, member.id


async def test_a_posting_counts_when_its_transaction_commits_and_never_after_a_rollback(
    session: AsyncSession, settings: Settings
) -> None:
    # given a shop with a member
    shop_id, member_id = await one_member(session, settings, "commit")
    day = datetime(2026, 3, 5, 12, tzinfo=UTC)

    # when a posting is rolled back, then another is committed by the same session
    await ledger.post(session, shop_id, ledger.Posting(member_id, 70, "earn", "k1", created_at=day))
    assert await rollup(session, shop_id) == {}  # written at commit, not before
    await session.rollback()
    await ledger.post(session, shop_id, ledger.Posting(member_id, 30, "earn", "k2", created_at=day))
    await session.commit()

    # then only the committed posting counts
    assert await rollup(session, shop_id) == {date(2026, 3, 5): (30, 0)}


async def test_a_closed_session_leaves_nothing_for_its_next_transaction(
    session: AsyncSession, settings: Settings
) -> None:
    # given a posting left in a session that is closed without committing
    shop_id, member_id = await one_member(session, settings, "close")
    day = datetime(2026, 3, 6, 12, tzinfo=UTC)
    await ledger.post(session, shop_id, ledger.Posting(member_id, 40, "earn", "k3", created_at=day))
    await session.close()

    # when the same session commits afterwards
    await session.commit()

    # then the abandoned posting's day was not written
    assert await rollup(session, shop_id) == {}


def test_what_an_entry_counts_as() -> None:
    assert contribution("earn", "available", 100) == (100, 0)
    assert contribution("earn", "pending", 100) == (100, 0)
    assert contribution("earn", "cancelled", 100) == (0, 0)
    assert contribution("adjust", "available", -40) == (0, 0)
    assert contribution("redeem", "available", -500) == (0, 500)
    assert contribution("expire", "available", -30) == (0, 0)
    assert utc_day(datetime(2026, 3, 1, 23, 30, tzinfo=UTC)) == date(2026, 3, 1)
