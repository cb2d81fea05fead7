"""The backfill job: outages are retried by Huey, problems a retry cannot fix stop at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from huey.exceptions import CancelExecution

from app.imports import tasks
from app.imports.backfill import BackfillReport
from app.integrations.shopify.admin import AdminUnavailable
from app.shops.tokens import ReauthorizationRequired


def fake_backfill(outcome: BaseException | None, calls: list[tuple[int, bool]]) -> Any:
    async def backfill(state: object, shop_id: int, reward_past_orders: bool) -> BackfillReport:
        calls.append((shop_id, reward_past_orders))
        if outcome is not None:
            raise outcome
        return BackfillReport(customers=1)

    return backfill


@pytest.fixture(autouse=True)
def own_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the job body on a loop of its own with no State: the service is faked here."""

    def run_job(job: Callable[[Any], Coroutine[Any, Any, Any]]) -> Any:
        return asyncio.run(job(None))

    monkeypatch.setattr(tasks, "run_job", run_job)


def test_backfill_job_runs_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, bool]] = []
    monkeypatch.setattr(tasks, "backfill_shop", fake_backfill(None, calls))

    tasks.backfill_shop_history.call_local(7, True)

    assert calls == [(7, True)]


def test_outage_is_raised_for_huey_to_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, bool]] = []
    monkeypatch.setattr(
        tasks, "backfill_shop", fake_backfill(AdminUnavailable("Shopify answered 503"), calls)
    )

    with pytest.raises(AdminUnavailable):
        tasks.backfill_shop_history.call_local(7)

    assert calls == [(7, False)]


def test_lost_token_cancels_without_retrying(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, bool]] = []
    monkeypatch.setattr(
        tasks,
        "backfill_shop",
        fake_backfill(ReauthorizationRequired("some-shop has no access token"), calls),
    )

    with pytest.raises(CancelExecution) as raised:
        tasks.backfill_shop_history.call_local(7)

    assert raised.value.retry is False


def test_sweep_sends_the_job_again_for_each_unfinished_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given two shops whose import never finished
    async def found(state: object) -> list[int]:
        return [3, 8]

    monkeypatch.setattr(tasks, "unfinished_imports", found)
    sent: list[int] = []
    monkeypatch.setattr(tasks, "backfill_shop_history", sent.append)

    # when the hourly sweep runs
    resent = tasks.resend_unfinished_history_imports.call_local()

    # then each gets its backfill job again
    assert (resent, sent) == ([3, 8], [3, 8])
