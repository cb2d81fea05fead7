"""The history backfill as a background job, enqueued after install.

Thin on purpose: the work is `backfill_shop`, which is idempotent, so a retry after an
outage simply finishes what the first attempt started. Failures a retry cannot fix (the
shop lost its token, Shopify denied access) stop at once instead of retrying for hours.
"""

from __future__ import annotations

import logging

from huey.exceptions import CancelExecution

from app.errors import AppError
from app.imports.backfill import BackfillReport, backfill_shop
from app.queue import huey, run_job
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
