"""Klaviyo jobs on Huey: thin wrappers over `app.integrations.klaviyo.sync`.

`sync_klaviyo` is enqueued (after commit, with the shop id only) when a key is saved; the
sweep runs every minute and starts a sync for every connected shop with a member or event
Klaviyo has not had yet, so a crashed worker or a lost enqueue only delays a change.
"""

from __future__ import annotations

from huey import crontab

from app.integrations.klaviyo import sync
from app.queue import huey, run_job
from app.state import State


@huey.task()
def sync_klaviyo(shop_id: int) -> None:
    """One sync run; a failure is recorded on the connection and the sweep tries again."""

    async def body(state: State) -> sync.SyncReport:
        return await sync.sync_shop(state, shop_id)

    run_job(body)


@huey.periodic_task(crontab(minute="*"))
def klaviyo_sweep() -> None:
    for shop_id in run_job(sync.shops_due):
        sync_klaviyo(shop_id)
