"""Jobs: sent only after commit, on SQLite storage embedded and on the real Redis."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from huey import Huey, RedisHuey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import unit_of_work
from app.models import Shop
from app.observability.metrics import JOBS_NOT_SENT
from app.queue import enqueue, huey, make_huey, run_burst
from app.settings import Settings
from app.state import State
from tests.conftest import REDIS_URL, service_missing

ran: list[Any] = []


@huey.task()
def remember(value: int) -> int:
    ran.append(value)
    return value * 2


async def test_job_is_sent_only_after_the_transaction_commits(
    state: State, session: AsyncSession, queue: Huey
) -> None:
    async with unit_of_work(state.sessionmaker) as work:
        work.add(Shop(domain="q-shop.myshopify.com"))
        enqueue(remember, 1)
        assert queue.pending_count() == 0  # still inside the transaction
    assert queue.pending_count() == 1


async def test_job_is_dropped_when_the_transaction_rolls_back(state: State, queue: Huey) -> None:
    async def failing_work() -> None:
        async with unit_of_work(state.sessionmaker):
            enqueue(remember, 2)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await failing_work()
    assert queue.pending_count() == 0


async def test_a_queue_that_is_down_does_not_undo_or_fail_a_committed_transaction(
    state: State, session: AsyncSession
) -> None:
    # given a job whose queue refuses connections (Redis restarting)
    down = RedisHuey(f"stamp-down-{uuid.uuid4().hex[:8]}", url="redis://127.0.0.1:1/0")

    @down.task()
    def unreachable(value: int) -> int:
        return value

    before = JOBS_NOT_SENT._value.get()

    # when a unit of work commits a row and asks for that job
    async with unit_of_work(state.sessionmaker) as work:
        work.add(Shop(domain="queue-down.myshopify.com"))
        enqueue(unreachable, 1)

    # then the row stands, the caller got no error, and the lost send is counted
    domains = await session.scalars(select(Shop.domain))
    assert list(domains) == ["queue-down.myshopify.com"]
    assert JOBS_NOT_SENT._value.get() == before + 1


def test_enqueue_outside_a_unit_of_work_is_a_programming_error(queue: Huey) -> None:
    with pytest.raises(RuntimeError, match="unit_of_work"):
        enqueue(remember, 3)
    assert queue.pending_count() == 0


def test_burst_runs_everything_due_and_returns(queue: Huey) -> None:
    ran.clear()
    remember(4)
    remember(5)

    executed = run_burst(queue)

    assert (executed, ran, queue.pending_count()) == (2, [4, 5], 0)


def test_redis_queue_round_trip() -> None:
    # given the queue at scale: Huey on the real Redis, under a name of this run's own
    settings = Settings(QUEUE_URL=REDIS_URL)
    redis_huey = make_huey(settings, name=f"stamp-test-{uuid.uuid4().hex[:8]}")
    try:
        redis_huey.storage.conn.ping()
    except Exception as exc:
        service_missing("Redis at " + REDIS_URL, exc)

    @redis_huey.task()
    def double(value: int) -> int:
        return value * 2

    try:
        # when a job is enqueued and a worker runs what is due
        result = double(21)
        assert redis_huey.pending_count() == 1
        assert run_burst(redis_huey) == 1

        # then its result comes back through Redis
        assert result.get() == 42
        assert redis_huey.pending_count() == 0
    finally:
        redis_huey.storage.flush_all()


def test_queue_url_forms() -> None:
    assert type(make_huey(Settings(QUEUE_URL="memory://"))).__name__ == "MemoryHuey"
    with pytest.raises(ValueError, match="QUEUE_URL"):
        make_huey(Settings(QUEUE_URL="amqp://elsewhere"))
