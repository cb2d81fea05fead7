"""Outgoing webhook jobs on Huey: thin wrappers over `app.integrations.outgoing.delivery`.

`deliver_webhooks` is enqueued (after commit, shop id only) on replay and enable; the
sweep runs every minute for every shop with an active subscription, which both picks up
new outbox events and attempts retries that have come due.
"""

from __future__ import annotations

from huey import crontab

from app.integrations.outgoing import delivery
from app.queue import huey, run_job
from app.state import State


@huey.task()
def deliver_webhooks(shop_id: int) -> None:
    async def body(state: State) -> delivery.DeliveryReport:
        return await delivery.deliver_shop(state, shop_id)

    run_job(body)


@huey.periodic_task(crontab(minute="*"))
def webhooks_sweep() -> None:
    for shop_id in run_job(delivery.shops_due):
        deliver_webhooks(shop_id)


@huey.periodic_task(crontab(minute="27", hour="3"))
def purge_delivered_webhooks() -> int:
    async def body(state: State) -> int:
        return await delivery.purge_delivered(state, state.settings.WEBHOOK_BODY_RETENTION_DAYS)

    return run_job(body)
