"""Seeding goes through the real webhook pipeline and lands exactly the hand-computed points.

Default program (USD): 1 point per 1.00 of merchandise after discounts (gift cards,
shipping and tax left out), floor; 100 points for a new account ("enabled" on
customers/create); tiers on points earned: Bronze 0 (x1), Silver 500 (x1.25), Gold 1500
(x1.5). The multiplier is the tier reached before the order. Deliveries follow
`TIMELINE`: customers, orders #1001-#1012, the cancellation of #1011, orders
#1013-#1020, then the partial refund of #1006.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.demo.seed import (
    CUSTOMERS,
    ORDERS,
    SeedError,
    SeedResult,
    ensure_demo_shop,
    seed,
    seed_webhooks,
)
from app.ledger import engine
from app.models import DeadLetter, LedgerEntry, Member, Order, ProgramVersion, Shop
from app.shops import tokens
from app.state import State
from tests.builders import row_counts

# email: (balance, tier, next tier or None, points to the next tier)
EXPECTED = {
    # signup 100; #1001 2 x 140.00 = 280 (Bronze, 100 earned) -> 380;
    # #1005 (89.00 + 25.00) - 10% WELCOME10 (8.90 + 2.50) = 102.60 -> 102 -> 482;
    # #1009 140.00 at x1 (482 < 500) -> 622, now Silver;
    # #1013 (89.00 + 14.50) x 1.25 = 129.375 -> 129 -> 751;
    # #1017 gift card 25.00 left out, 9.75 x 1.25 = 12.1875 -> 12 -> 763.
    "ada@demo.example": (763, "Silver", "Gold", 1500 - 763),
    # signup 100; #1002 5 x 89.00 = 445 -> 545 Silver; #1006 4 x 140.00 = 560 x 1.25 = 700
    # -> 1245; #1010 280.00 x 1.25 = 350 -> 1595 Gold; #1014 89.00 x 1.5 = 133.5 -> 133
    # -> 1728; refund of 1 of #1006's 4 jackets: round_half_up(700 x 140 / 560) = 175
    # reversed -> 1553 (still Gold: 1553 >= 1500).
    "grace@demo.example": (1553, "Gold", None, 0),
    # signup 100; #1003 3 x 25.00 = 75 -> 175; #1007 30.00 + 2 x 14.50 = 59 -> 234;
    # #1011 89 earned then cancelled, 89 reversed -> 234; #1015 3 x 9.75 = 29.25 -> 29 -> 263.
    "alan@demo.example": (263, "Bronze", "Silver", 500 - 263),
    # signup 100; #1004 2 x 30.00 - 10% (6.00) = 54 -> 154; #1012 14.50 -> 14 -> 168;
    # #1018 2 x 25.00 = 50 -> 218.
    "katherine@demo.example": (218, "Bronze", "Silver", 500 - 218),
    # signup 100, no orders.
    "dorothy@demo.example": (100, "Bronze", "Silver", 400),
    # "disabled" (a checkout-made customer record, not an account): no signup bonus;
    # #1008 25.00 + 9.75 = 34.75 -> 34; #1016 140 -> 174.
    "hedy@demo.example": (174, "Bronze", "Silver", 500 - 174),
    # "invited" is not an account either: #1019 89.00 -> 89.
    "margaret@demo.example": (89, "Bronze", "Silver", 500 - 89),
    # a guest with no customer record: #1020 30.00 + 14.50 = 44.50 -> 44.
    "rosalind@demo.example": (44, "Bronze", "Silver", 500 - 44),
}
# 7 customers/create + 20 x (orders/create + orders/paid) + 1 cancellation + 1 refund.
WEBHOOKS = 7 + 20 * 2 + 1 + 1


async def test_seed_delivers_every_webhook_through_the_pipeline(
    seeded: SeedResult, session: AsyncSession
) -> None:
    # Given the demo seeded through POST /webhooks/shopify
    # Then every delivery was new and processed, and none was dead-lettered
    assert (seeded.processed, seeded.duplicate) == (WEBHOOKS, 0)
    await session.rollback()
    assert await session.scalar(select(func.count()).select_from(DeadLetter)) == 0
    assert await session.scalar(select(func.count()).select_from(Order)) == len(ORDERS) == 20
    assert len(CUSTOMERS) == 8


async def test_seeded_members_have_the_hand_computed_balances(
    seeded: SeedResult, session: AsyncSession
) -> None:
    await session.rollback()
    members = {m.email: m for m in (await session.execute(select(Member))).scalars()}
    assert sorted(email or "" for email in members) == sorted(EXPECTED)
    for email, (balance, tier, _, _) in EXPECTED.items():
        member = members[email]
        cached = (member.points_balance, member.pending_points, member.lifetime_points)
        assert cached == (balance, 0, balance), email
        assert member.tier_name == tier, email
    assert {email for email, m in members.items() if m.is_account} == {
        "ada@demo.example",
        "grace@demo.example",
        "alan@demo.example",
        "katherine@demo.example",
        "dorothy@demo.example",
    }
    assert members["rosalind@demo.example"].customer_id is None
    # and the cached balances agree with the ledger entries
    assert await engine.verify(session) == []


async def test_refund_and_cancellation_are_reversals_in_the_ledger(
    seeded: SeedResult, session: AsyncSession
) -> None:
    await session.rollback()
    reversals = (
        await session.execute(
            select(LedgerEntry.source_id, LedgerEntry.points)
            .where(LedgerEntry.kind == "reverse")
            .order_by(LedgerEntry.id)
        )
    ).all()
    # #1011 cancelled: all 89 back; #1006 partial refund: 175 of its 700.
    assert [(source, points) for source, points in reversals] == [
        ("5950000001011", -89),
        ("5950000001006", -175),
    ]


async def test_a_second_seed_changes_nothing(
    seeded: SeedResult, client: httpx.AsyncClient, state: State, session: AsyncSession
) -> None:
    before = await row_counts(session)
    balances = {
        m.email: (m.points_balance, m.lifetime_points, m.tier_name)
        for m in (await session.execute(select(Member))).scalars()
    }

    again = await seed(client, state)

    assert (again.processed, again.duplicate) == (0, WEBHOOKS)
    assert await row_counts(session) == before
    after = {
        m.email: (m.points_balance, m.lifetime_points, m.tier_name)
        for m in (await session.execute(select(Member))).scalars()
    }
    assert after == balances


async def test_the_demo_shop_is_installed_with_its_default_program(
    seeded: SeedResult, state: State, session: AsyncSession
) -> None:
    await session.rollback()
    shop = (await session.execute(select(Shop))).scalar_one()
    assert (shop.domain, shop.currency, shop.status) == (
        "stamp-demo.myshopify.com",
        "USD",
        "installed",
    )
    assert tokens.has_usable_token(shop, shop.installed_at or shop.created_at)
    assert state.cipher.decrypt(shop.access_token_enc or b"").startswith("shpat_demo_")
    versions = (await session.execute(select(ProgramVersion))).scalars().all()
    assert len(versions) == 1
    # ensuring it again neither duplicates the shop nor adds a program version
    await ensure_demo_shop(state)
    await session.rollback()
    assert await session.scalar(select(func.count()).select_from(Shop)) == 1
    assert await session.scalar(select(func.count()).select_from(ProgramVersion)) == 1


def test_webhook_ids_and_order_ids_are_fixed() -> None:
    first = seed_webhooks(datetime(2026, 9, 1, tzinfo=UTC))
    later = seed_webhooks(datetime(2026, 9, 1, tzinfo=UTC) + timedelta(days=3))
    assert [hook.webhook_id for hook in first] == [hook.webhook_id for hook in later]
    assert len({hook.webhook_id for hook in first}) == len(first) == WEBHOOKS
    assert [h.payload["id"] for h in first] == [h.payload["id"] for h in later]


async def test_seed_webhooks_are_signed_with_the_app_secret(
    client: httpx.AsyncClient, state: State, session: AsyncSession
) -> None:
    await ensure_demo_shop(state)
    wrong = replace(state, settings=state.settings.model_copy(update={"SHOPIFY_API_SECRET": None}))
    # The dev fallback secret is not the app's: the receiver refuses, nothing is written.
    before = await row_counts(session)
    with pytest.raises(SeedError, match="401"):
        await seed(client, wrong)
    assert await row_counts(session) == before
