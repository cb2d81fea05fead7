"""Housekeeping on a schedule: retention purges of stored webhook bodies."""

from __future__ import annotations

from huey import crontab

from app.queue import huey, run_job
from app.state import State
from webhooks.pipeline import purge_stored_bodies


async def _purge(state: State) -> int:
    return await purge_stored_bodies(state, state.settings.WEBHOOK_BODY_RETENTION_DAYS)


@huey.periodic_task(crontab(minute="17", hour="3"))
def purge_webhook_bodies() -> int:
    return run_job(_purge)
