"""The ledger's periodic jobs on Huey: thin wrappers over `app.ledger.periodic`.

Each runs its job body for every installed shop, one transaction per shop, on the worker
thread's own event loop. Every body is idempotent, so a run that overlaps another (two
schedulers, a slow run meeting the next tick) changes nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from huey import crontab
from huey.api import TaskWrapper

from app.ledger import periodic
from app.ledger.periodic import SweepResult
from app.models.base import utcnow
from app.queue import huey, run_job


def _periodic(
    schedule: Callable[[datetime], bool],
) -> Callable[[Callable[[], SweepResult]], TaskWrapper]:
    """`huey.periodic_task` with a type, so the tasks below stay type-checked."""
    decorator: Callable[[Callable[[], SweepResult]], TaskWrapper] = huey.periodic_task(schedule)
    return decorator


@_periodic(crontab(minute="*/15"))
def release_pending_points() -> SweepResult:
    """Pending points become spendable within 15 minutes of their hold ending."""
    return run_job(lambda state: periodic.run_for_all_shops(state, periodic.release_due, utcnow()))


@_periodic(crontab(minute="7"))
def expire_points() -> SweepResult:
    """Hourly: warnings and expiries land within an hour of their date."""
    return run_job(
        lambda state: periodic.run_for_all_shops(state, periodic.expire_points, utcnow())
    )


@_periodic(crontab(minute="37"))
def reevaluate_tiers() -> SweepResult:
    """Hourly: members leave a tier soon after their points leave the window."""
    return run_job(
        lambda state: periodic.run_for_all_shops(state, periodic.reevaluate_tiers, utcnow())
    )


@_periodic(crontab(minute="23"))
def birthday_bonuses() -> SweepResult:
    """Hourly rather than daily: shops' days start at different hours, and a missed run
    is caught up the same day; the per-year key gives each bonus once."""
    return run_job(
        lambda state: periodic.run_for_all_shops(state, periodic.birthday_bonuses, utcnow())
    )
