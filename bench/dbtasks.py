"""Seed and check a benchmark database, run in a fresh process by `bench.intake`.

    python -m bench.dbtasks seed  <DATABASE_URL> <shop domain>   -> {"shop_id": 1}
    python -m bench.dbtasks check <DATABASE_URL> <shop id>       -> {"earn_entries": ...}

A fresh process imports the application code as it is on disk at that moment, the same
code the uvicorn server just ran, and keeps the benchmark driver free of app imports.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from app.settings import async_database_url


async def seed(database_url: str, domain: str) -> dict[str, Any]:
    """An installed shop with its default program, committed."""
    from app.models import Shop, ShopStatus
    from app.models.base import utcnow
    from app.program.service import ensure_default_program

    engine = create_async_engine(async_database_url(database_url))
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            shop = Shop(
                domain=domain,
                name="Harbour & Pine (bench)",
                currency="USD",
                status=ShopStatus.installed,
                access_token_enc=None,
                installed_at=utcnow(),
            )
            session.add(shop)
            await session.flush()
            await ensure_default_program(session, shop)
            await session.commit()
            return {"shop_id": shop.id}
    finally:
        await engine.dispose()


async def check(database_url: str, shop_id: int) -> dict[str, Any]:
    """Row counts after a run, and the members whose balances drifted from their entries."""
    from app.ledger import engine as ledger_engine
    from app.models import DeadLetter, LedgerEntry, Member, Order, WebhookDelivery

    engine = create_async_engine(async_database_url(database_url))
    try:
        async with AsyncSession(engine) as session:

            async def count(model: Any, *where: Any) -> int:
                query = select(func.count()).select_from(model).where(*where)
                return int(await session.scalar(query) or 0)

            drift = await ledger_engine.verify(session, shop_id)
            return {
                "earn_entries": await count(
                    LedgerEntry, LedgerEntry.shop_id == shop_id, LedgerEntry.kind == "earn"
                ),
                "ledger_entries": await count(LedgerEntry, LedgerEntry.shop_id == shop_id),
                "orders": await count(Order, Order.shop_id == shop_id),
                "deliveries": await count(WebhookDelivery, WebhookDelivery.shop_id == shop_id),
                "dead_letters": await count(DeadLetter),
                "members": await count(Member, Member.shop_id == shop_id),
                "drift": drift[:5],
                "drift_count": len(drift),
            }
    finally:
        await engine.dispose()


def main(argv: list[str]) -> int:
    command, database_url, argument = argv
    if command == "seed":
        result = asyncio.run(seed(database_url, argument))
    elif command == "check":
        result = asyncio.run(check(database_url, int(argument)))
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
