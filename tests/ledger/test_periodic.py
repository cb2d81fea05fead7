"""Scheduled ledger jobs on a fixed clock: release, expiry with warnings, tiers, birthdays."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.ledger import engine, periodic, service
from app.models import EntryStatus, LedgerEntry, Member, Shop, ShopStatus
from app.program.config import (
    BonusRule,
    ExpiryMode,
    ExpiryRule,
    ProgramConfig,
    TierProgram,
    TierWindow,
    default_program,
)
from app.program.service import save_program
from app.settings import Settings
from app.state import State
from tests.builders import create_member, create_shop

BASE = datetime(2025, 1, 10, 12, 0, tzinfo=UTC)


def day(n: int) -> datetime:
    return BASE + timedelta(days=n)


async def use_program(session: AsyncSession, shop: Shop, **update: Any) -> ProgramConfig:
    config = default_program("USD").model_copy(update=update)
    await save_program(session, shop, config, "test")
    await session.commit()
    return config


async def credit(
    session: AsyncSession,
    shop: Shop,
    member: Member,
    points: int,
    at: datetime,
    key: str,
    *,
    kind: str = "earn",
    release_at: datetime | None = None,
) -> int:
    """Post an entry dated `at`; with `release_at` it is pending until then."""
    entry_id = await service.post(
        session,
        shop.id,
        service.Posting(
            member_id=member.id,
            points=points,
            kind=kind,
            idempotency_key=key,
            status=EntryStatus.pending if release_at else EntryStatus.available,
            available_at=release_at,
            created_at=at,
        ),
    )
    await session.commit()
    assert entry_id is not None
    return entry_id


async def redeem(
    session: AsyncSession, shop: Shop, member: Member, points: int, at: datetime, key: str
) -> None:
    posting = service.Posting(
        member_id=member.id, points=-points, kind="redeem", idempotency_key=key, created_at=at
    )
    assert await service.spend(session, shop.id, posting) is not None
    await session.commit()


async def fresh(session: AsyncSession, member: Member) -> Member:
    found = await session.get(Member, member.id, populate_existing=True)
    assert found is not None
    return found


async def ledger(session: AsyncSession) -> list[tuple[int, str, int, str, str]]:
    result = await session.execute(
        select(LedgerEntry).order_by(LedgerEntry.id).execution_options(populate_existing=True)
    )
    return [(e.member_id, e.kind, e.points, e.status, e.idempotency_key) for e in result.scalars()]


async def snapshot(session: AsyncSession) -> tuple[object, ...]:
    """Everything a job may write: the ledger and each member's cached and marked columns."""
    members = await session.execute(
        select(
            Member.id,
            Member.points_balance,
            Member.pending_points,
            Member.lifetime_points,
            Member.tier_name,
            Member.expiring_points,
            Member.expiring_at,
            Member.sync_dirty_at,
        ).order_by(Member.id)
    )
    return (await ledger(session), [tuple(row) for row in members])


async def run(session: AsyncSession, job: periodic.ShopJob, shop: Shop, now: datetime) -> int:
    """Run one job body the way the edge does (flush inside, commit outside)."""
    result = await job(session, shop, now)
    await session.commit()
    return result


async def rerun_changes_nothing(
    session: AsyncSession, job: periodic.ShopJob, shop: Shop, now: datetime
) -> None:
    before = await snapshot(session)
    assert await run(session, job, shop, now) == 0
    assert await snapshot(session) == before


async def no_drift(session: AsyncSession) -> None:
    await session.rollback()
    assert await engine.verify(session) == []


def warning(member: Member) -> tuple[int, datetime | None]:
    return member.expiring_points, member.expiring_at


# --- release ------------------------------------------------------------------------------


async def test_pending_points_are_released_when_their_hold_ends(
    session: AsyncSession, settings: Settings
) -> None:
    # given a 14-day hold: 600 pending from day 0, and a partial refund inside the window
    # that reversed 100 of them (pending too, released on the same day)
    shop = await create_shop(session, settings)
    await use_program(session, shop, pending_days=14)
    ada = await create_member(session, shop, customer_id="1")
    await credit(session, shop, ada, 600, day(0), "order:1:earn", release_at=day(14))
    await credit(
        session, shop, ada, -100, day(2), "refund:1:reverse", kind="reverse", release_at=day(14)
    )
    ada = await fresh(session, ada)
    assert (ada.points_balance, ada.pending_points, ada.lifetime_points) == (0, 500, 0)

    # when the job runs one second before the hold ends, nothing moves
    assert await run(session, periodic.release_due, shop, day(14) - timedelta(seconds=1)) == 0
    ada = await fresh(session, ada)
    assert (ada.points_balance, ada.pending_points, ada.tier_name) == (0, 500, None)

    # when it runs at the release time, both entries become available together
    assert await run(session, periodic.release_due, shop, day(14)) == 2

    # then exactly 500 moved from pending to spendable, and they lift Ada to Silver
    ada = await fresh(session, ada)
    assert (ada.points_balance, ada.pending_points, ada.lifetime_points) == (500, 0, 500)
    assert ada.tier_name == "Silver"
    assert [status for *_, status, _ in await ledger(session)] == ["available", "available"]
    await rerun_changes_nothing(session, periodic.release_due, shop, day(14))
    await no_drift(session)


# --- expiry: inactivity -------------------------------------------------------------------


INACTIVITY = ExpiryRule(mode=ExpiryMode.inactivity, days=365, warning_days=30)


async def test_expiry_with_a_warning(session: AsyncSession, settings: Settings) -> None:
    # given 365-day inactivity expiry with a 30-day warning, and 200 points earned on day 0
    shop = await create_shop(session, settings)
    await use_program(session, shop, expiry=INACTIVITY)
    ada = await create_member(session, shop, customer_id="1")
    await credit(session, shop, ada, 200, day(0), "order:1:earn")

    # at day 334 nothing happens
    assert await run(session, periodic.expire_points, shop, day(334)) == 0
    assert warning(await fresh(session, ada)) == (0, None)

    # at day 335 the "expiring soon" record is set once, and marked for the Klaviyo sync
    assert await run(session, periodic.expire_points, shop, day(335)) == 0
    ada = await fresh(session, ada)
    assert warning(ada) == (200, day(365))
    assert ada.sync_dirty_at == day(335)
    await rerun_changes_nothing(session, periodic.expire_points, shop, day(340))
    assert await run(session, periodic.expire_points, shop, day(365) - timedelta(seconds=1)) == 0

    # at day 365 one expire entry takes exactly the balance to 0 and the warning clears
    assert await run(session, periodic.expire_points, shop, day(365)) == 200
    ada = await fresh(session, ada)
    assert (ada.points_balance, ada.lifetime_points) == (0, 200)
    assert warning(ada) == (0, None)
    assert await ledger(session) == [
        (ada.id, "earn", 200, "available", "order:1:earn"),
        (ada.id, "expire", -200, "available", f"expire:{ada.id}:2025-01-10"),
    ]
    await rerun_changes_nothing(session, periodic.expire_points, shop, day(365))
    await rerun_changes_nothing(session, periodic.expire_points, shop, day(900))
    await no_drift(session)


async def test_activity_clears_the_warning_and_restarts_the_clock(
    session: AsyncSession, settings: Settings
) -> None:
    # given Ada is being warned on day 335
    shop = await create_shop(session, settings)
    await use_program(session, shop, expiry=INACTIVITY)
    ada = await create_member(session, shop, customer_id="1")
    await credit(session, shop, ada, 200, day(0), "order:1:earn")
    await run(session, periodic.expire_points, shop, day(335))
    assert warning(await fresh(session, ada)) == (200, day(365))

    # when she redeems 50 on day 340, the warning clears at the next run
    await redeem(session, shop, ada, 50, day(340), "redeem:1")
    assert await run(session, periodic.expire_points, shop, day(340)) == 0
    assert warning(await fresh(session, ada)) == (0, None)

    # then the clock counts from day 340: a warning at day 675, expiry at day 705
    assert await run(session, periodic.expire_points, shop, day(674)) == 0
    assert warning(await fresh(session, ada)) == (0, None)
    assert await run(session, periodic.expire_points, shop, day(675)) == 0
    assert warning(await fresh(session, ada)) == (150, day(705))
    assert await run(session, periodic.expire_points, shop, day(705)) == 150

    # and a later earning and lapse expire again, under a key naming the new last activity
    await credit(session, shop, ada, 10, day(710), "order:2:earn")
    assert await run(session, periodic.expire_points, shop, day(1075)) == 10
    keys = [key for *_, key in await ledger(session) if key.startswith("expire:")]
    assert keys == [f"expire:{ada.id}:2025-12-16", f"expire:{ada.id}:2026-12-21"]
    assert (await fresh(session, ada)).points_balance == 0
    await no_drift(session)


async def test_expiry_never_touches_pending_points_or_a_debt(
    session: AsyncSession, settings: Settings
) -> None:
    # given Ada has 200 available and 40 still pending, and Bob owes 50 after a reversal
    shop = await create_shop(session, settings)
    await use_program(session, shop, expiry=INACTIVITY)
    ada = await create_member(session, shop, customer_id="1")
    bob = await create_member(session, shop, customer_id="2")
    await credit(session, shop, ada, 200, day(0), "order:1:earn")
    await credit(session, shop, ada, 40, day(0), "order:2:earn", release_at=day(400))
    await credit(session, shop, bob, 100, day(0), "order:3:earn")
    await credit(session, shop, bob, -150, day(1), "order:3:reverse", kind="reverse")

    # when both lapse
    assert await run(session, periodic.expire_points, shop, day(366)) == 200

    # then only Ada's available balance expired; her pending points and Bob's debt stay
    ada, bob = await fresh(session, ada), await fresh(session, bob)
    assert (ada.points_balance, ada.pending_points) == (0, 40)
    assert (bob.points_balance, warning(bob)) == (-50, (0, None))
    assert [kind for _, kind, *_ in await ledger(session)].count("expire") == 1
    await no_drift(session)


async def test_turning_expiry_off_clears_warnings(
    session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    await use_program(session, shop, expiry=INACTIVITY)
    ada = await create_member(session, shop, customer_id="1")
    await credit(session, shop, ada, 200, day(0), "order:1:earn")
    await run(session, periodic.expire_points, shop, day(340))
    assert warning(await fresh(session, ada)) == (200, day(365))

    await use_program(session, shop, expiry=ExpiryRule(mode=ExpiryMode.none))

    assert await run(session, periodic.expire_points, shop, day(400)) == 0
    ada = await fresh(session, ada)
    assert (ada.points_balance, warning(ada)) == (200, (0, None))
    await rerun_changes_nothing(session, periodic.expire_points, shop, day(400))


# --- expiry: per earning ------------------------------------------------------------------


PER_EARNING = ExpiryRule(mode=ExpiryMode.per_earning, days=365, warning_days=30)


async def test_per_earning_expiry_spends_the_soonest_expiring_lot_first(
    session: AsyncSession, settings: Settings
) -> None:
    # given 100 earned on day 0, 50 on day 100, and 120 spent on day 200 (FIFO: all of
    # lot 1 and 20 of lot 2)
    shop = await create_shop(session, settings)
    await use_program(session, shop, expiry=PER_EARNING)
    ada = await create_member(session, shop, customer_id="1")
    await credit(session, shop, ada, 100, day(0), "order:1:earn")
    lot_2 = await credit(session, shop, ada, 50, day(100), "order:2:earn")
    await redeem(session, shop, ada, 120, day(200), "redeem:1")

    # when lot 1 reaches its end on day 365, nothing of it remains, so nothing expires
    await rerun_changes_nothing(session, periodic.expire_points, shop, day(365))
    assert (await fresh(session, ada)).points_balance == 30

    # 30 days before lot 2 ends, its remaining 30 points are announced
    assert await run(session, periodic.expire_points, shop, day(435)) == 0
    assert warning(await fresh(session, ada)) == (30, day(465))

    # on day 465 those 30 points of lot 2 expire
    assert await run(session, periodic.expire_points, shop, day(465)) == 30
    ada = await fresh(session, ada)
    assert (ada.points_balance, warning(ada)) == (0, (0, None))
    assert (await ledger(session))[-1] == (
        ada.id,
        "expire",
        -30,
        "available",
        f"expire:lot:{lot_2}",
    )
    await rerun_changes_nothing(session, periodic.expire_points, shop, day(465))
    await rerun_changes_nothing(session, periodic.expire_points, shop, day(900))
    await no_drift(session)


async def test_per_earning_lots_start_when_points_are_released(
    session: AsyncSession, settings: Settings
) -> None:
    # given 10 and 20 earned at the same moment, 15 spent the next day (10 of the first
    # lot, 5 of the second), and 60 pending from day 0 that is released on day 14
    shop = await create_shop(session, settings)
    await use_program(session, shop, expiry=PER_EARNING, pending_days=14)
    ada = await create_member(session, shop, customer_id="1")
    await credit(session, shop, ada, 10, day(0), "order:1:earn")
    second = await credit(session, shop, ada, 20, day(0), "order:2:earn")
    await redeem(session, shop, ada, 15, day(1), "redeem:1")
    pending = await credit(session, shop, ada, 60, day(0), "order:3:earn", release_at=day(14))
    assert await run(session, periodic.release_due, shop, day(14)) == 1

    # when day 365 comes, the remaining 15 of the second credit expire, not the released 60
    assert await run(session, periodic.expire_points, shop, day(365)) == 15
    assert (await ledger(session))[-1][-1] == f"expire:lot:{second}"
    assert warning(await fresh(session, ada)) == (60, day(379))

    # and the released points expire 365 days after their release
    assert await run(session, periodic.expire_points, shop, day(379) - timedelta(seconds=1)) == 0
    assert await run(session, periodic.expire_points, shop, day(379)) == 60
    assert (await ledger(session))[-1][-1] == f"expire:lot:{pending}"
    assert (await fresh(session, ada)).points_balance == 0
    await no_drift(session)


# --- tiers --------------------------------------------------------------------------------


async def test_tiers_move_up_and_down_with_the_rolling_window(
    session: AsyncSession, settings: Settings
) -> None:
    # given the default Bronze 0 / Silver 500 / Gold 1500 tiers over a rolling 12 months,
    # Ada earns 600 on day 0 and Bob, who never earned, has no tier
    shop = await create_shop(session, settings)
    await use_program(session, shop)
    ada = await create_member(session, shop, customer_id="1")
    bob = await create_member(session, shop, customer_id="2")
    await credit(session, shop, ada, 600, day(0), "order:1:earn")

    # then Ada is Silver
    assert await run(session, periodic.reevaluate_tiers, shop, day(0)) == 1
    assert (await fresh(session, ada)).tier_name == "Silver"
    await rerun_changes_nothing(session, periodic.reevaluate_tiers, shop, day(365))

    # when 12 months and a day pass with nothing new, she moves down to Bronze
    assert await run(session, periodic.reevaluate_tiers, shop, day(366)) == 1
    ada = await fresh(session, ada)
    assert (ada.tier_name, ada.sync_dirty_at, ada.points_balance) == ("Bronze", day(366), 600)
    assert (await fresh(session, bob)).tier_name is None
    await rerun_changes_nothing(session, periodic.reevaluate_tiers, shop, day(366))
    await no_drift(session)


async def test_calendar_year_tiers_reset_at_midnight_in_the_shop_time_zone(
    session: AsyncSession, settings: Settings
) -> None:
    # given a New York shop with calendar-year tiers, and 600 points earned at 20:00 on
    # 31 December local time (01:00 UTC on 1 January)
    shop = await create_shop(session, settings)
    shop.iana_timezone = "America/New_York"
    await session.commit()
    levels = default_program("USD").tiers.levels
    await use_program(
        session, shop, tiers=TierProgram(window=TierWindow.calendar_year, levels=levels)
    )
    ada = await create_member(session, shop, customer_id="1")
    await credit(session, shop, ada, 600, datetime(2026, 1, 1, 1, tzinfo=UTC), "order:1:earn")

    # at 22:00 local on 31 December she is Silver
    assert await run(session, periodic.reevaluate_tiers, shop, datetime(2026, 1, 1, 3, tzinfo=UTC))
    assert (await fresh(session, ada)).tier_name == "Silver"

    # at 01:00 local on 1 January the new year's window is empty: Bronze
    assert await run(session, periodic.reevaluate_tiers, shop, datetime(2026, 1, 1, 6, tzinfo=UTC))
    assert (await fresh(session, ada)).tier_name == "Bronze"
    await no_drift(session)


# --- birthdays ----------------------------------------------------------------------------


async def test_birthday_bonus_once_a_year_on_the_shop_local_day(
    session: AsyncSession, settings: Settings
) -> None:
    # given a Tokyo shop giving 50 points on birthdays, Ada born on 15 March, Leap born on
    # 29 February, and Cy with no birthday on file
    shop = await create_shop(session, settings)
    shop.iana_timezone = "Asia/Tokyo"
    await session.commit()
    await use_program(session, shop, birthday=BonusRule(enabled=True, points=50))
    ada = await create_member(session, shop, customer_id="1", birthday=date(1990, 3, 15))
    leap = await create_member(session, shop, customer_id="2", birthday=date(2000, 2, 29))
    await create_member(session, shop, customer_id="3")

    def at(y: int, m: int, d: int, h: int, minute: int = 0) -> datetime:
        return datetime(y, m, d, h, minute, tzinfo=UTC)

    # 23:00 on 14 March in Tokyo: not yet
    assert await run(session, periodic.birthday_bonuses, shop, at(2025, 3, 14, 14)) == 0
    # 00:30 on 15 March in Tokyo (still the 14th in UTC): Ada's bonus, once
    assert await run(session, periodic.birthday_bonuses, shop, at(2025, 3, 14, 15, 30)) == 1
    await rerun_changes_nothing(session, periodic.birthday_bonuses, shop, at(2025, 3, 15, 10))
    # a year later, again
    assert await run(session, periodic.birthday_bonuses, shop, at(2026, 3, 15, 3)) == 1

    # 29 February birthdays are kept on 28 February in common years, on the 29th in leap years
    assert await run(session, periodic.birthday_bonuses, shop, at(2025, 2, 28, 3)) == 1
    assert await run(session, periodic.birthday_bonuses, shop, at(2025, 3, 1, 3)) == 0
    assert await run(session, periodic.birthday_bonuses, shop, at(2028, 2, 28, 3)) == 0
    assert await run(session, periodic.birthday_bonuses, shop, at(2028, 2, 29, 3)) == 1

    assert await ledger(session) == [
        (ada.id, "birthday", 50, "available", f"birthday:{ada.id}:2025"),
        (ada.id, "birthday", 50, "available", f"birthday:{ada.id}:2026"),
        (leap.id, "birthday", 50, "available", f"birthday:{leap.id}:2025"),
        (leap.id, "birthday", 50, "available", f"birthday:{leap.id}:2028"),
    ]
    ada = await fresh(session, ada)
    assert (ada.points_balance, ada.lifetime_points, ada.tier_name) == (100, 100, "Bronze")

    # when the merchant turns the bonus off, no more are given
    await use_program(session, shop, birthday=BonusRule(enabled=False, points=50))
    assert await run(session, periodic.birthday_bonuses, shop, at(2027, 3, 15, 3)) == 0
    await no_drift(session)


# --- every shop ---------------------------------------------------------------------------


async def test_each_installed_shop_runs_in_its_own_transaction(
    state: State, session: AsyncSession, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # given three shops with 100 points due for release; one is uninstalled
    shops = [
        await create_shop(session, settings, domain=f"shop-{n}.myshopify.com") for n in range(3)
    ]
    shops[2].status = ShopStatus.uninstalled
    await session.commit()
    members = []
    for shop in shops:
        member = await create_member(session, shop, customer_id="1")
        await credit(session, shop, member, 100, day(0), "order:1:earn", release_at=day(14))
        members.append(member)

    async def fails_for_the_second(session: AsyncSession, shop: Shop, now: datetime) -> int:
        released = await periodic.release_due(session, shop, now)
        if shop.id == shops[1].id:
            raise RuntimeError("boom")
        return released

    # when the job sweeps every shop and the second shop fails
    with caplog.at_level(logging.ERROR, logger="app.ledger.periodic"):
        sweep = await periodic.run_for_all_shops(state, fails_for_the_second, day(14))

    # then the first shop committed, the failing one rolled back, the uninstalled one was
    # skipped, and the failure was logged
    assert (sweep.results, sweep.failed, sweep.total) == ({shops[0].id: 1}, [shops[1].id], 1)
    assert "boom" in caplog.text
    await session.rollback()
    balances = [(await fresh(session, m)).points_balance for m in members]
    pending = [(await fresh(session, m)).pending_points for m in members]
    assert (balances, pending) == ([100, 0, 0], [0, 100, 100])
    await no_drift(session)


def test_ledger_jobs_are_registered_as_periodic_tasks() -> None:
    from app.ledger import tasks
    from app.queue import huey

    registered = {type(task) for task in huey._registry.periodic_tasks}
    jobs = (
        tasks.release_pending_points,
        tasks.expire_points,
        tasks.reevaluate_tiers,
        tasks.birthday_bonuses,
    )
    assert {job.task_class for job in jobs} <= registered
    # release runs every 15 minutes; the others hourly
    quarter_past, ten_past = datetime(2025, 1, 1, 3, 15), datetime(2025, 1, 1, 3, 10)
    assert tasks.release_pending_points.task_class().validate_datetime(quarter_past)
    assert not tasks.release_pending_points.task_class().validate_datetime(ten_past)


async def test_jobs_walk_every_batch(
    session: AsyncSession, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given batches of one member and three members with 600 pending points each
    monkeypatch.setattr(periodic, "BATCH_SIZE", 1)
    shop = await create_shop(session, settings)
    await use_program(session, shop, expiry=INACTIVITY)
    members = [await create_member(session, shop, customer_id=str(n)) for n in range(3)]
    for n, member in enumerate(members):
        await credit(session, shop, member, 600, day(0), f"order:{n}:earn", release_at=day(14))

    # then every job reaches all three
    assert await run(session, periodic.release_due, shop, day(14)) == 3
    assert await run(session, periodic.reevaluate_tiers, shop, day(381)) == 3
    assert await run(session, periodic.expire_points, shop, day(365)) == 1800
    found = [await fresh(session, member) for member in members]
    assert [(m.points_balance, m.tier_name) for m in found] == [(0, "Bronze")] * 3
    await no_drift(session)
