"""Un-cancelling an order (WooCommerce): the ledger stays append-only and earns once net.

A cancellation reverses what the order still carried; when the order is paid again a
reinstatement entry gives it back, and the next cancellation posts under a fresh key.
Every step is delivered twice (WooCommerce coalesces and repeats updates).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from app.ledger import engine
from app.models import LedgerEntry, Member, Order, Shop
from app.settings import Settings
from app.state import State
from tests.builders import hold_points
from tests.integrations.woocommerce.support import create_woo_shop, order, signed, wire


@pytest.fixture
def app(state: State) -> Starlette:
    from app.main import create_app

    return wire(create_app(state.settings))


async def deliver(client: httpx.AsyncClient, shop: Shop, payload: Any, times: int = 2) -> None:
    for _ in range(times):
        body, headers = signed(payload, "order.updated")
        response = await client.post(
            f"/webhooks/woocommerce/{shop.id}", content=body, headers=headers
        )
        assert response.status_code == 200, response.text


async def ledger(session: AsyncSession) -> list[tuple[int, str, str]]:
    await session.rollback()
    rows = await session.execute(
        select(LedgerEntry.points, LedgerEntry.status, LedgerEntry.idempotency_key).order_by(
            LedgerEntry.id
        )
    )
    return [tuple(row) for row in rows]  # type: ignore[misc]


async def member(session: AsyncSession) -> tuple[int, int, int]:
    await session.rollback()
    ada = (await session.execute(select(Member).where(Member.customer_id == "12"))).scalar_one()
    return ada.points_balance, ada.pending_points, ada.lifetime_points


async def no_drift(session: AsyncSession) -> None:
    await session.rollback()
    assert await engine.verify(session) == []


async def test_flip_flops_with_duplicates_earn_exactly_once_net(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given a connected store and its 72.00 order
    shop = await create_woo_shop(session, settings)

    # when it goes completed → cancelled → completed → cancelled → completed, each twice
    for status in ("completed", "cancelled", "completed", "cancelled", "completed"):
        await deliver(client, shop, order(status=status))

    # then the append-only ledger tells the story and the member holds 72, once
    assert await ledger(session) == [
        (72, "available", "order:727:earn"),
        (-72, "available", "order:727:cancel:reverse"),
        (72, "available", "order:727:reinstate:1"),
        (-72, "available", "order:727:cancel:reverse:1"),
        (72, "available", "order:727:reinstate:2"),
    ]
    assert await member(session) == (72, 0, 72)
    saved = (await session.execute(select(Order))).scalar_one()
    assert (saved.cancelled_at, saved.status, saved.points_reversed) == (None, "open", 0)
    await no_drift(session)

    # and a final cancellation (twice) takes it back under the next key
    await deliver(client, shop, order(status="cancelled"))
    assert (await ledger(session))[-1] == (-72, "available", "order:727:cancel:reverse:2")
    assert await member(session) == (0, 0, 0)
    await no_drift(session)


async def test_reinstating_keeps_what_a_partial_refund_took(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given a completed order with an 18.00 refund (72 - 18 = 54 points left)
    shop = await create_woo_shop(session, settings)
    refunds = [{"id": 801, "reason": "damaged", "total": "-18.00"}]
    await deliver(client, shop, order(status="completed", refunds=refunds))
    assert await member(session) == (54, 0, 54)

    # when it is cancelled and completed again
    await deliver(client, shop, order(status="cancelled", refunds=refunds))
    assert await member(session) == (0, 0, 0)
    await deliver(client, shop, order(status="completed", refunds=refunds))

    # then only the cancellation is given back; the refund still counts
    assert await member(session) == (54, 0, 54)
    await no_drift(session)


async def test_reinstating_inside_the_return_window_stays_pending(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given a program that holds points for 14 days
    shop = await create_woo_shop(session, settings)
    await hold_points(session, shop)

    # when the order earns (pending), is cancelled (cancels the pending earning) and comes back
    await deliver(client, shop, order(status="processing"))
    assert await member(session) == (0, 72, 0)
    await deliver(client, shop, order(status="cancelled"))
    assert await member(session) == (0, 0, 0)
    await deliver(client, shop, order(status="completed"))

    # then the points are pending again with the original release date
    assert await member(session) == (0, 72, 0)
    entries = (await session.execute(select(LedgerEntry).order_by(LedgerEntry.id))).scalars().all()
    assert [(e.points, e.status) for e in entries] == [(72, "cancelled"), (72, "pending")]
    assert entries[1].available_at == entries[0].available_at
    await no_drift(session)

    # and a second cancellation cancels the pending reinstatement outright
    await deliver(client, shop, order(status="cancelled"))
    assert await member(session) == (0, 0, 0)
    await no_drift(session)


async def test_an_order_cancelled_before_stamp_saw_it_earns_when_paid_again(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given an order Stamp first saw cancelled
    shop = await create_woo_shop(session, settings)
    await deliver(client, shop, order(status="cancelled"))
    assert await ledger(session) == []

    # when the merchant sets it back to processing
    await deliver(client, shop, order(status="processing"))

    # then it earns, once
    assert await ledger(session) == [(72, "available", "order:727:earn")]
    assert await member(session) == (72, 0, 72)
    await no_drift(session)


async def test_pending_or_failed_after_cancel_does_not_reinstate(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_woo_shop(session, settings)
    await deliver(client, shop, order(status="completed"))
    await deliver(client, shop, order(status="cancelled"))

    await deliver(client, shop, order(status="on-hold"))

    assert await member(session) == (0, 0, 0)
    saved = (await session.execute(select(Order))).scalar_one()
    assert saved.cancelled_at is not None
    await no_drift(session)
