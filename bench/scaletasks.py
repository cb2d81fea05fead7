"""Small steps the scale test, soak and faults run in a fresh process with Stamp's env.

    python -m bench.scaletasks klaviyo-connect <shop id> <key>   -> {"connected": true}
    python -m bench.scaletasks klaviyo-sync <shop id> <times>    -> {"enqueued": n}
    python -m bench.scaletasks backlog <shop id>                 -> {"profiles": .., ...}
    python -m bench.scaletasks soak-setup <shop id> <judge.me token> -> {"api_key": ...}
    python -m bench.scaletasks books <shop id>                   -> counts that must hold

A fresh process takes DATABASE_URL and QUEUE_URL from the environment, as a worker does,
so jobs go to the deployment's own Redis.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any


async def klaviyo_connect(shop_id: int, key: str) -> dict[str, Any]:
    from app.db import unit_of_work
    from app.integrations.klaviyo import service
    from app.models import Shop
    from app.settings import get_settings
    from app.state import State

    state = State.create(get_settings())
    try:
        async with unit_of_work(state.sessionmaker) as session:
            shop = await session.get(Shop, shop_id)
            assert shop is not None
            await service.save_key(session, state.cipher, shop, key)
        return {"connected": True}
    finally:
        await state.aclose()


def klaviyo_sync(shop_id: int, times: int) -> dict[str, Any]:
    from app.integrations.klaviyo.tasks import sync_klaviyo

    for _ in range(times):
        sync_klaviyo(shop_id)
    return {"enqueued": times}


async def backlog(shop_id: int) -> dict[str, Any]:
    from app.integrations.klaviyo.repository import KlaviyoRepository
    from app.queue import huey
    from app.settings import get_settings
    from app.state import State

    state = State.create(get_settings())
    try:
        async with state.sessionmaker() as session:
            repo = KlaviyoRepository(session)
            connection = await repo.connection(shop_id)
            cursor = connection.event_cursor if connection else 0
            return {
                "profiles": await repo.backlog_count(shop_id),
                "events": await repo.unsent_event_count(shop_id, cursor),
                "leased": bool(connection and connection.lease_until),
                "queue": huey.pending_count(),
            }
    finally:
        await state.aclose()


async def soak_setup(shop_id: int, judgeme_token: str) -> dict[str, Any]:
    """An Admin API token (for the fake Shopify), reviews rewarded, Judge.me, an API key."""
    from app.api_keys.service import create_key
    from app.db import unit_of_work
    from app.integrations.judgeme.service import save_token
    from app.models import Shop
    from app.program.config import ReviewRule, default_program
    from app.program.service import save_program
    from app.settings import get_settings
    from app.state import State

    state = State.create(get_settings())
    try:
        async with unit_of_work(state.sessionmaker) as session:
            shop = await session.get(Shop, shop_id)
            assert shop is not None
            shop.access_token_enc = state.cipher.encrypt("shpat_soak_0123456789")
            rule = ReviewRule(enabled=True, points=50, media_points=25)
            program = default_program("USD").model_copy(update={"review": rule})
            await save_program(session, shop, program, "soak")
            await save_token(session, state.cipher, shop, judgeme_token)
            created = await create_key(session, shop, "soak")
        return {"api_key": created.plaintext}
    finally:
        await state.aclose()


async def books(shop_id: int) -> dict[str, Any]:
    """What a fault must not break: one earn entry per order, redemptions settled, no drift."""
    from sqlalchemy import func, select

    from app.ledger.engine import verify
    from app.models import DeadLetter, LedgerEntry, Order, Redemption, WebhookDelivery
    from app.settings import get_settings
    from app.state import State

    state = State.create(get_settings())
    try:
        async with state.sessionmaker() as session:

            async def count(model: Any, *where: Any) -> int:
                query = select(func.count()).select_from(model).where(*where)
                return int(await session.scalar(query) or 0)

            statuses = await session.execute(
                select(Redemption.status, func.count()).group_by(Redemption.status)
            )
            codes = await session.execute(
                select(Redemption.code).where(Redemption.status == "issued")
            )
            return {
                "orders": await count(Order, Order.shop_id == shop_id),
                "earn_entries": await count(
                    LedgerEntry, LedgerEntry.idempotency_key.like("order:%:earn")
                ),
                "deliveries": await count(WebhookDelivery, WebhookDelivery.shop_id == shop_id),
                "dead_letters": await count(DeadLetter),
                "redemptions": dict(statuses.tuples().all()),
                "returned_entries": await count(
                    LedgerEntry, LedgerEntry.idempotency_key.like("redeem:%:returned")
                ),
                "issued_codes": sorted(codes.scalars()),
                "drift": await verify(session, shop_id),
            }
    finally:
        await state.aclose()


def main(argv: list[str]) -> int:
    command, *arguments = argv
    if command == "klaviyo-connect":
        result = asyncio.run(klaviyo_connect(int(arguments[0]), arguments[1]))
    elif command == "klaviyo-sync":
        result = klaviyo_sync(int(arguments[0]), int(arguments[1]))
    elif command == "soak-setup":
        result = asyncio.run(soak_setup(int(arguments[0]), arguments[1]))
    elif command == "books":
        result = asyncio.run(books(int(arguments[0])))
    elif command == "backlog":
        result = asyncio.run(backlog(int(arguments[0])))
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
