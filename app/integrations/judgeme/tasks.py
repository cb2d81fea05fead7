"""Judge.me jobs on Huey: a thin wrapper over `app.integrations.judgeme.service`."""

from __future__ import annotations

from huey import crontab

from app.integrations.judgeme import service
from app.models.base import utcnow
from app.queue import huey, run_job
from app.state import State


@huey.periodic_task(crontab(minute="41"))
def judgeme_review_check() -> None:
    """Hourly, each rewarded review at most daily: a deleted review loses its points."""

    async def body(state: State) -> int:
        return await service.check_all_shops(state, utcnow())

    run_job(body)
