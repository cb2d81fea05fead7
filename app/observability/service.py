"""The figures read at scrape time: queue depth, dead letters, integration sync backlog."""

from __future__ import annotations

import asyncio
import logging
import time

from app.integrations.klaviyo.repository import KlaviyoRepository
from app.models.base import utcnow
from app.observability.repository import ObservabilityRepository
from app.state import State

logger = logging.getLogger("stamp.metrics")

Gauges = dict[str, tuple[str, float | dict[str, float]]]

# A scrape every few seconds from several Prometheus servers must not load the database.
CACHE_SECONDS = 10.0
_cache: tuple[float, Gauges] | None = None


def queue_figures() -> tuple[float, float, float]:
    """(reachable 1/0, tasks waiting, tasks scheduled for later) from the Huey storage."""
    from app.queue import huey

    try:
        return 1.0, float(huey.pending_count()), float(huey.scheduled_count())
    except Exception as exc:
        logger.warning("queue storage unreachable", extra={"error": type(exc).__name__})
        return 0.0, -1.0, -1.0


async def database_figures(state: State) -> Gauges:
    async with state.sessionmaker() as session:
        repo = ObservabilityRepository(session)
        open_letters, oldest = await repo.open_dead_letters()
        profiles = events = 0
        klaviyo = KlaviyoRepository(session)
        for shop_id, cursor in await repo.klaviyo_cursors():
            profiles += await klaviyo.backlog_count(shop_id)
            events += await klaviyo.unsent_event_count(shop_id, cursor)
    age = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
    return {
        "stamp_dead_letters_open": ("Dead letters waiting for a replay.", float(open_letters)),
        "stamp_dead_letter_oldest_age_seconds": (
            "Age of the oldest open dead letter (0 when there is none).",
            age,
        ),
        "stamp_sync_backlog": (
            "Klaviyo items not yet sent (profiles changed, member events), every shop.",
            {"klaviyo_profiles": float(profiles), "klaviyo_events": float(events)},
        ),
    }


async def snapshot(state: State) -> Gauges:
    """Every scrape-time gauge; database figures are cached for CACHE_SECONDS per process."""
    global _cache
    up, pending, scheduled = await asyncio.to_thread(queue_figures)
    gauges: Gauges = {
        "stamp_queue_up": ("1 when the job queue's storage answered this scrape.", up),
        "stamp_queue_depth": ("Jobs waiting for a worker (-1: queue unreachable).", pending),
        "stamp_queue_scheduled": ("Jobs scheduled for later, retries included.", scheduled),
    }
    now = time.monotonic()
    if _cache is None or now - _cache[0] > CACHE_SECONDS:
        try:
            _cache = (now, await database_figures(state))
        except Exception as exc:
            logger.warning("database figures unavailable", extra={"error": type(exc).__name__})
            gauges["stamp_database_up"] = ("1 when the database answered this scrape.", 0.0)
            return gauges
    gauges["stamp_database_up"] = ("1 when the database answered this scrape.", 1.0)
    return gauges | _cache[1]


def reset_cache() -> None:
    global _cache
    _cache = None
