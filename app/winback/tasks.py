"""Win-back's periodic job on Huey: a thin wrapper over `app.winback.service`.

Daily: statuses move by days, so an hourly scan would only repeat itself. The scan refits
a shop's model when it is older than a week (`service.REFIT_AFTER`).
"""

from __future__ import annotations

from huey import crontab

from app.ledger import periodic
from app.ledger.periodic import SweepResult
from app.models.base import utcnow
from app.queue import huey, run_job
from app.winback import service


@huey.periodic_task(crontab(minute="41", hour="4"))
def winback_scan() -> SweepResult:
    """Daily at 04:41 UTC: fit where stale, then scan every installed shop."""
    return run_job(lambda state: periodic.run_for_all_shops(state, service.scan_shop, utcnow()))
