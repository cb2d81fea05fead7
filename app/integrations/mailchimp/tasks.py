"""Mailchimp jobs on Huey: a sync after connecting, and a sweep every five minutes for
every connected shop with a member Mailchimp has not had in its current state."""

from __future__ import annotations

from huey import crontab

from app.integrations.mailchimp import sync
from app.queue import huey, run_job
from app.state import State


@huey.task()
def sync_mailchimp(shop_id: int) -> None:
    async def body(state: State) -> sync.MailchimpReport:
        return await sync.sync_shop(state, shop_id)

    run_job(body)


@huey.periodic_task(crontab(minute="*/5"))
def mailchimp_sweep() -> None:
    for shop_id in run_job(sync.shops_due):
        sync_mailchimp(shop_id)
