"""Fit, scan, status history, outbox, incentive and API on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import httpx
import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from typer.testing import CliRunner

from app.ledger import outbox
from app.members.schemas import WinbackOut
from app.models import Member, MemberEvent, Order, Shop
from app.models.winback import WinbackState, WinbackStatusChange
from app.settings import Settings, get_settings
from app.state import State
from app.winback import models, routes, service, views
from app.winback.cli import winback_cli
from tests.builders import api_key_for, create_member, create_shop
from tests.conftest import _with_state

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)


async def _orders(session: AsyncSession, shop: Shop, member: Member, *days_ago: int) -> None:
    for days in days_ago:
        session.add(
            Order(
                shop_id=shop.id,
                member_id=member.id,
                order_id=f"{member.id}-{days}",
                currency="USD",
                merchandise_amount=Decimal("40"),
                total_amount=Decimal("42.50"),
                placed_at=NOW - timedelta(days=days),
            )
        )
    await session.commit()


async def _shop_with_members(session: AsyncSession, state: State) -> tuple[Shop, list[Member]]:
    """Four members of a small shop (recency rule, 30-day cycle)."""
    shop = await create_shop(session, state.settings)
    members = [
        await create_member(session, shop, customer_id=f"c{i}", email=f"m{i}@x.example")
        for i in range(1, 5)
    ]
    members[0].points_balance = 120
    await _orders(session, shop, members[0], 120, 90, 60)  # 60 days since: at risk
    await _orders(session, shop, members[1], 40, 10)  # active
    await _orders(session, shop, members[2], 100)  # one order, 100 days ago
    await _orders(session, shop, members[3], 200, 170)  # lapsed
    return shop, members


async def test_scan_gives_every_buyer_a_status_reasons_and_a_history(
    winback_state: State, session: AsyncSession
) -> None:
    shop, members = await _shop_with_members(session, winback_state)
    # when the shop is scanned
    async with winback_state.sessionmaker() as work:
        flagged = await service.scan_shop(work, shop, NOW)
        await work.commit()
    # then each member has a status and a score, and one became at risk
    assert flagged == 1
    states = {
        s.member_id: s
        for s in await session.scalars(select(WinbackState).order_by(WinbackState.id))
    }
    got = [(states[m.id].status, states[m.id].score) for m in members]
    assert got == [
        ("at_risk", 0.7053),
        ("active", 0.1842),
        ("one_time_lapsing", 0.8695),
        ("lapsed", 0.9686),
    ]
    first = states[members[0].id]
    assert first.reasons == [
        "usually orders every 30 days; last order 60 days ago",
        "120 points unspent",
    ]
    assert states[members[2].id].reasons == [
        "one order so far, 100 days ago; repeat customers here usually order again within 30 days"
    ]
    assert first.points_at_risk == 120
    assert first.expected_next_order_at == datetime(2025, 5, 2, tzinfo=UTC)
    changes = list(
        await session.scalars(select(WinbackStatusChange).order_by(WinbackStatusChange.id))
    )
    assert [(c.from_status, c.to_status) for c in changes] == [
        (None, "at_risk"),
        (None, "active"),
        (None, "one_time_lapsing"),
        (None, "lapsed"),
    ]
    events = list(await session.scalars(select(MemberEvent)))
    assert [(e.member_id, e.name) for e in events] == [(members[0].id, outbox.WINBACK_FLAGGED)]
    assert events[0].properties["points_at_risk"] == 120
    assert events[0].properties["reasons"] == first.reasons
    assert await views.winback_view(session, members[0].id) == WinbackOut(
        status="at_risk", score=0.7053
    )

    # when scanned again the same day, then nothing new is recorded
    async with winback_state.sessionmaker() as work:
        assert await service.scan_shop(work, shop, NOW) == 0
        await work.commit()
    assert len(list(await session.scalars(select(WinbackStatusChange)))) == 4


async def test_incentive_treats_at_risk_members_and_reports_the_lift(
    winback_state: State, session: AsyncSession
) -> None:
    shop, members = await _shop_with_members(session, winback_state)
    async with winback_state.sessionmaker() as work:
        await service.set_incentive(work, shop, points=50, holdout_share=0.0, now=NOW)
        await service.scan_shop(work, shop, NOW)
        await work.commit()
    await session.refresh(members[0])
    assert members[0].points_balance == 170  # 120 + the 50-point win-back bonus
    # when the member orders again, the next scan records the win-back
    await _orders(session, shop, members[0], -1)
    later = NOW + timedelta(days=2)
    async with winback_state.sessionmaker() as work:
        await service.scan_shop(work, shop, later)
        await work.commit()
    changes = list(
        await session.scalars(
            select(WinbackStatusChange)
            .where(WinbackStatusChange.member_id == members[0].id)
            .order_by(WinbackStatusChange.id)
        )
    )
    assert [(c.from_status, c.to_status, c.arm) for c in changes] == [
        (None, "at_risk", "treated"),
        ("at_risk", "active", None),
    ]
    report = await service.incentive_report(session, shop, NOW - timedelta(days=1))
    treated = report["treated"]
    assert (treated.flagged, treated.won_back, treated.revenue) == (1, 1, Decimal("42.5"))
    assert (report["holdout"].flagged, report["holdout"].won_back_rate) == (0, 0.0)


def test_holdout_arm_is_stable_per_member_and_near_its_share() -> None:
    arms = [service.holdout_arm(1, member_id, 0.2) for member_id in range(10_000)]
    assert arms == [service.holdout_arm(1, member_id, 0.2) for member_id in range(10_000)]
    assert arms.count("holdout") == 2026


async def test_api_lists_at_risk_members_by_score_with_a_cursor(
    winback_state: State, session: AsyncSession
) -> None:
    shop, members = await _shop_with_members(session, winback_state)
    headers = await api_key_for(session, shop)
    async with winback_state.sessionmaker() as work:
        await service.scan_shop(work, shop, NOW)
        await work.commit()
    from app.errors import AppError
    from app.main import _app_error

    app = Starlette(routes=routes.routes, exception_handlers={AppError: _app_error})
    transport = httpx.ASGITransport(app=_with_state(app, winback_state))
    async with httpx.AsyncClient(transport=transport, base_url="https://stamp.test") as http:
        first = await http.get(
            "/api/v1/winback", params={"status": "lapsed", "limit": 1}, headers=headers
        )
        body = first.json()
        assert first.status_code == 200
        assert [(m["customer_id"], m["score"]) for m in body["data"]] == [("c4", 0.9686)]
        assert body["next_cursor"] is None
        at_risk = await http.get(
            "/api/v1/winback", params={"sort": "points_at_risk"}, headers=headers
        )
        assert [m["points_at_risk"] for m in at_risk.json()["data"]] == [120]
        bad = await http.get("/api/v1/winback", params={"cursor": "nope"}, headers=headers)
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "invalid_cursor"


def test_scored_members_are_columns_turned_into_records_one_batch_at_a_time() -> None:
    # given three members' orders (ordinal days), scored by the recency rule: a 30-day
    # cycle, so 60 days since member 7's last order is 2 cycles, at risk
    members = np.array([7, 7, 7, 9, 5], dtype=np.int64)
    days = np.array([100, 130, 160, 150, 40], dtype=np.int64)
    fitted = models.fit_shop(members, days, 220)
    scored = service.score_members(fitted, members, days, 220)
    # then the columns are per member, sorted by id, and a slice becomes records
    assert scored.member_id.tolist() == [5, 7, 9]
    assert scored.status_counts() == {
        "active": 0,
        "at_risk": 1,
        "lapsed": 0,
        "one_time_lapsing": 2,
    }
    assert scored.records(1, 2) == [
        service.Scored(
            member_id=7,
            status="at_risk",
            score=0.7053,
            orders=3,
            last_order_at=datetime.combine(date.fromordinal(160), time(), tzinfo=UTC),
            expected_next_order_at=datetime.combine(date.fromordinal(190), time(), tzinfo=UTC),
            usual_gap=30.0,
            since_last=60.0,
        )
    ]


async def test_scan_command_shows_a_progress_bar(
    winback_state: State,
    session: AsyncSession,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop, _ = await _shop_with_members(session, winback_state)
    monkeypatch.setenv("DATABASE_URL", settings.DATABASE_URL)
    get_settings.cache_clear()
    try:
        # when the merchant scans from a terminal
        result = await asyncio.to_thread(
            CliRunner().invoke, winback_cli, ["scan", "--shop", shop.domain]
        )
    finally:
        get_settings.cache_clear()
    # then a progress bar counts the members, the outcome is printed, and all are scanned
    assert result.exit_code == 0, result.output
    bar = next(line for line in result.output.splitlines() if line.startswith("scanning"))
    assert "4/4" in bar
    assert result.output.splitlines()[-1].endswith(" members became at risk.")
    assert len(list(await session.scalars(select(WinbackState)))) == 4
