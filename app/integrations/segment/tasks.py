"""Segment jobs on Huey: identify calls after connecting and a sweep every five minutes."""

from __future__ import annotations

from huey import crontab

from app.integrations.segment import sync
from app.queue import huey, run_job
from app.state import State


@huey.task()
def sync_segment(shop_id: int) -> None:
    async def body(state: State) -> sync.SegmentReport:
        return await sync.sync_shop(state, shop_id)

    run_job(body)


@huey.periodic_task(crontab(minute="*/5"))
def segment_sweep() -> None:
    for shop_id in run_job(sync.shops_due):
        sync_segment(shop_id)
