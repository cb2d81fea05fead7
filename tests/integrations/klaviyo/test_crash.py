"""SIGKILL a sync worker mid-sync; after a restart every member converges and no event
is recorded twice (a re-sent event carries the same unique_id)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import unit_of_work
from app.integrations.klaviyo import service, sync
from app.ledger import service as ledger
from app.ledger.engine import verify
from app.models import Member, MemberEvent, Shop
from app.settings import Settings
from app.state import State
from tests.builders import DOMAIN, create_shop
from tests.integrations.fake_klaviyo import KEY, FakeKlaviyo

ROOT = Path(__file__).resolve().parents[3]
MEMBERS = 150


@pytest.fixture
def fake() -> Iterator[FakeKlaviyo]:
    server = FakeKlaviyo().start()
    yield server
    for hold in server.holds:
        hold.released.set()
    server.stop()


def worker(settings: Settings, fake: FakeKlaviyo, shop_id: int) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        DATABASE_URL=settings.DATABASE_URL,
        KLAVIYO_API_URL=fake.base_url,
        ALLOW_PRIVATE_URLS="1",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integrations.klaviyo.crash_worker", str(shop_id)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


async def earn(session: AsyncSession, shop: Shop, members: list[Member], tag: str) -> None:
    for member in members:
        posting = ledger.Posting(
            member.id, 10 + member.id % 7, "earn", f"order:{tag}{member.id}:earn"
        )
        await ledger.post(session, shop.id, posting)
    await session.commit()


async def expected_profiles(session: AsyncSession, shop: Shop) -> dict[str, dict[str, Any]]:
    await session.rollback()
    query = (
        select(Member).where(Member.shop_id == shop.id).execution_options(populate_existing=True)
    )
    return {
        m.email: {k: v for k, v in sync.profile_properties(shop, m).items() if v is not None}
        for m in (await session.execute(query)).scalars()
        if m.email
    }


async def test_a_worker_killed_mid_sync_converges_after_restart_and_sends_no_event_twice(
    fake: FakeKlaviyo, state: State, session: AsyncSession, settings: Settings, queue: object
) -> None:
    # given a connected shop whose 150 members then earn twice (300 events)
    shop = await create_shop(session, settings)
    members = [
        Member(shop_id=shop.id, email=f"m{i:03d}@example.com", referral_code=f"R{i:06d}")
        for i in range(MEMBERS)
    ]
    session.add_all(members)
    await session.commit()
    async with unit_of_work(state.sessionmaker) as uow:
        await service.save_key(uow, state.cipher, shop, KEY)
    await earn(session, shop, members, "a")
    await earn(session, shop, members, "b")
    # and the fake will take the third batch of 50 events but never answer it
    hold = fake.hold("POST /api/event-bulk-create-jobs", nth=3, seconds=120)

    # when the worker is killed while it waits for that answer
    first = worker(settings, fake, shop.id)
    reached = await asyncio.to_thread(hold.reached.wait, 90)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    hold.released.set()
    # and members change while no worker runs, then the worker is restarted
    await earn(session, shop, members[:10], "c")
    second = worker(settings, fake, shop.id)
    output, _ = await asyncio.to_thread(second.communicate, timeout=120)

    # then the restarted worker settled the shop
    assert reached, "the worker never reached the third event batch"
    assert first.returncode == -signal.SIGKILL
    assert second.returncode == 0, output.decode()
    seen = fake.snapshot()
    # and every member's profile holds exactly the values in the ledger
    assert seen["profiles"] == await expected_profiles(session, shop)
    # and every event is recorded once; the 50 re-sent ones were recognised by unique_id
    events = (await session.execute(select(MemberEvent.unique_id))).scalars().all()
    assert sorted(e["unique_id"] for e in seen["events"]) == sorted(f"{DOMAIN}:{u}" for u in events)
    assert len(events) == 2 * MEMBERS + 10
    assert seen["duplicate_events"] == 50
    status = await service.status(session, shop)
    assert (status.status, status.backlog.profiles, status.backlog.events) == ("connected", 0, 0)
    assert await verify(session) == []
