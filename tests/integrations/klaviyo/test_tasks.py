"""The Klaviyo jobs are thin: the sweep starts one sync per shop with work waiting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from app.integrations.klaviyo import sync, tasks


def test_the_sweep_queues_a_sync_for_each_shop_with_work(monkeypatch: pytest.MonkeyPatch) -> None:
    # given two shops with a backlog
    def run_job(job: Callable[..., Any]) -> Any:
        assert job is sync.shops_due
        return [3, 5]

    queued: list[int] = []
    monkeypatch.setattr(tasks, "run_job", run_job)
    monkeypatch.setattr(tasks, "sync_klaviyo", queued.append)

    # when the sweep runs
    tasks.klaviyo_sweep.call_local()

    # then each gets a sync job, by id
    assert queued == [3, 5]


def test_a_sync_job_runs_the_engine_for_its_shop(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[int] = []

    async def sync_shop(state: object, shop_id: int) -> sync.SyncReport:
        ran.append(shop_id)
        return sync.SyncReport()

    def run_job(job: Callable[[Any], Any]) -> Any:
        import asyncio

        return asyncio.run(job(None))

    monkeypatch.setattr(tasks, "run_job", run_job)
    monkeypatch.setattr(sync, "sync_shop", sync_shop)

    tasks.sync_klaviyo.call_local(7)

    assert ran == [7]
