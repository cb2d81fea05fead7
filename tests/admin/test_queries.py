"""Pages run a fixed handful of statements, however much data the shop has (no N+1)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from app.ledger import service as ledger
from app.models import Order, Shop
from app.program.service import ensure_default_program
from app.settings import Settings
from app.state import State
from tests.admin.support import bearer
from tests.builders import create_member, create_shop


@contextmanager
def counted(state: State) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(state.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(state.engine.sync_engine, "before_cursor_execute", count)


async def grow(session: AsyncSession, shop: Shop, start: int, members: int) -> None:
    for number in range(start, start + members):
        member = await create_member(session, shop, email=f"m{number}@example.com")
        await ledger.post(
            session, shop.id, ledger.Posting(member.id, 10, "earn", f"order:{number}:earn")
        )
        session.add(
            Order(
                shop_id=shop.id,
                member_id=member.id,
                order_id=str(number),
                currency="USD",
                merchandise_amount=Decimal(10),
                total_amount=Decimal(10),
            )
        )
    await session.commit()


async def test_page_statement_counts_do_not_grow_with_the_data(
    client: httpx.AsyncClient, state: State, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    await ensure_default_program(session, shop)
    await session.commit()
    pages = ["/admin", "/admin/members", "/admin/referrals", "/admin/program"]
    # The program version is cached per process once loaded: warm it so both rounds
    # measure the same thing.
    for path in pages:
        await client.get(path, headers=bearer(settings, shop))
    counts: list[list[int]] = []
    for start, size in ((0, 2), (2, 20)):
        await grow(session, shop, start, size)
        round_counts = []
        for path in pages:
            with counted(state) as statements:
                response = await client.get(path, headers=bearer(settings, shop))
            assert response.status_code == 200
            round_counts.append(len(statements))
        counts.append(round_counts)
    assert counts[0] == counts[1]
    assert max(counts[1]) <= 12
