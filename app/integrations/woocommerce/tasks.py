"""WooCommerce jobs on Huey: a thin wrapper over `app.integrations.woocommerce.reconcile`."""

from __future__ import annotations

from huey import crontab

from app.integrations.woocommerce import reconcile
from app.models.base import utcnow
from app.queue import huey, run_job
from app.state import State


@huey.periodic_task(crontab(minute="*/15"))
def woocommerce_reconcile() -> None:
    """Every 15 minutes: orders whose webhook never arrived, and disabled webhooks."""

    async def body(state: State) -> int:
        return await reconcile.reconcile_all(state, utcnow())

    run_job(body)
