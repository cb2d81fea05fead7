"""The history backfill as a background job, enqueued after install.

Thin on purpose: the work is `backfill_shop`, which is idempotent, so a retry after an
outage simply finishes what the first attempt started. Failures a retry cannot fix (the
shop lost its token, Shopify denied access) stop at once instead of retrying for hours.
A job lost before it ran (the queue was down at install) is sent again by the hourly
sweep, and so is one that stopped: at most once a day per shop.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from huey import crontab
from huey.exceptions import CancelExecution

from app.errors import AppError
from app.imports.backfill import BackfillReport, backfill_shop
from app.models.base import utcnow
from app.queue import huey, run_job
from app.shops.repository import ShopRepository
from app.state import State

logger = logging.getLogger(__name__)


@huey.task(retries=5, retry_delay=300)
def backfill_shop_history(shop_id: int, reward_past_orders: bool = False) -> None:
    """Import a shop's Shopify customers and orders (`stamp import history` in a worker)."""

    async def body(state: State) -> BackfillReport:
        return await backfill_shop(state, shop_id, reward_past_orders)

    try:
        report = run_job(body)
    except AppError as exc:
        if getattr(exc, "retryable", False):
            raise
        logger.error("History backfill of shop %s stopped: %s", shop_id, exc.message)
        raise CancelExecution(exc.message, retry=False) from exc
    logger.info("History backfill of shop %s done: %s", shop_id, report)


# A shop's import job is sent again when it was installed this long ago without one
# finishing, and none started within the last day (a large shop's import takes hours).
LOST_AFTER = timedelta(hours=1)
RETRY_AFTER = timedelta(days=1)


async def unfinished_imports(state: State) -> list[int]:
    now = utcnow()
    async with state.sessionmaker() as session:
        return await ShopRepository(session).unfinished_history_imports(
            installed_before=now - LOST_AFTER, started_before=now - RETRY_AFTER
        )


@huey.periodic_task(crontab(minute="53"))
def resend_unfinished_history_imports() -> list[int]:
    """Send the backfill job again for every shop whose import was lost or stopped."""
    shop_ids = run_job(unfinished_imports)
    for shop_id in shop_ids:
        logger.warning("History import of shop %s never finished; sending it again", shop_id)
        backfill_shop_history(shop_id)
    return shop_ids
