"""Redemption housekeeping: expire unused codes, settle redemptions stuck half-way."""

from __future__ import annotations

from datetime import timedelta

from huey import crontab
from sqlalchemy import select

from app.ledger.periodic import run_for_all_shops
from app.models import Shop
from app.models.base import utcnow
from app.queue import huey, run_job
from app.rewards import service
from app.state import State


async def _expire(state: State) -> object:
    return await run_for_all_shops(state, service.expire_codes, utcnow())


async def _settle(state: State) -> int:
    async with state.sessionmaker() as session:
        shop_ids = list(
            (await session.execute(select(Shop.id).where(Shop.status == "installed"))).scalars()
        )
    settled = 0
    for shop_id in shop_ids:
        settled += await service.settle_stale_pending(state, shop_id, timedelta(minutes=10))
    return settled


@huey.periodic_task(crontab(minute="*/30"))
def expire_redemption_codes() -> None:
    run_job(_expire)


@huey.periodic_task(crontab(minute="*/5"))
def settle_pending_redemptions() -> None:
    run_job(_settle)
