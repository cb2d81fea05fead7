"""History backfill: Shopify customers and orders through bulk exports, without points unless
asked, and then each paid order earns exactly once under the webhook's own key."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.imports.backfill import BackfillReport, backfill_shop, order_payload
from app.integrations.shopify.admin import AdminUnavailable
from app.ledger import engine
from app.models import Order, Shop
from app.program.config import EarningTrigger, default_program
from app.program.service import save_program
from app.settings import Settings
from app.state import State
from tests.builders import create_member, create_shop, row_counts
from tests.imports.support import (
    ORDERS_URL,
    FakeShopify,
    balances,
    entries,
    line,
    members_by_email,
    money,
    order,
)


@pytest.fixture
def shopify() -> Iterator[FakeShopify]:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        yield FakeShopify(router)


@pytest.fixture
async def shop_id(session: AsyncSession, settings: Settings) -> int:
    """An installed USD shop on the default program with Grace known as a guest."""
    shop = await create_shop(session, settings)
    await create_member(session, shop, email="grace@example.com", referral_code="GRACE234")
    return shop.id


async def orders_by_id(session: AsyncSession) -> dict[str, Order]:
    await session.rollback()
    result = await session.execute(select(Order).execution_options(populate_existing=True))
    return {row.order_id: row for row in result.scalars()}


async def test_backfill_records_members_and_orders_without_points(
    state: State, session: AsyncSession, shopify: FakeShopify, shop_id: int
) -> None:
    # when the history is backfilled without rewarding past orders
    report = await backfill_shop(state, shop_id)

    # then customers became members, Grace's guest member was claimed, the bad id skipped
    assert report == BackfillReport(
        customers=4,
        members_created=2,
        members_matched=1,
        orders=5,
        orders_recorded=5,
        skipped=1,
        skipped_details=[
            "customer 'gid://shopify/Customer/not-a-number': "
            "'gid://shopify/Customer/not-a-number' does not end in a numeric id"
        ],
    )
    # and the two exports asked Shopify for what they need, orders grouped with their lines
    assert [run["groupObjects"] for run in shopify.runs] == [False, True]
    members = await members_by_email(session)
    assert set(members) == {"ada@example.com", None, "grace@example.com", "guest@example.com"}
    ada = members["ada@example.com"]
    assert (ada.customer_id, ada.first_name, ada.last_name, ada.phone, ada.is_account) == (
        "1001",
        "Ada",
        "Lovelace",
        "+442071234567",
        True,
    )
    protected = members[None]
    assert (protected.customer_id, protected.first_name, protected.is_account) == (
        "1002",
        None,
        False,
    )
    grace = members["grace@example.com"]
    assert (grace.customer_id, grace.first_name, grace.referral_code) == (
        "1003",
        "Grace",
        "GRACE234",
    )
    guest = members["guest@example.com"]
    assert guest.customer_id is None
    ada_id, protected_id, guest_id = ada.id, protected.id, guest.id
    # and every order is recorded with its member and amounts, but nothing earned
    orders = await orders_by_id(session)
    summary = {
        order_id: (
            row.member_id,
            row.merchandise_amount,
            row.total_amount,
            row.currency,
            row.is_test,
            row.status,
            row.points_earned,
        )
        for order_id, row in orders.items()
    }
    assert summary == {
        "5001": (ada_id, Decimal("90.00"), Decimal("115.00"), "USD", False, "open", 0),
        "5002": (protected_id, Decimal("36.00"), Decimal("38.88"), "USD", False, "open", 0),
        "5003": (ada_id, Decimal("30.00"), Decimal("30.00"), "USD", True, "open", 0),
        "5004": (ada_id, Decimal("40.00"), Decimal("40.00"), "USD", False, "cancelled", 0),
        "5005": (guest_id, Decimal("15.00"), Decimal("15.00"), "USD", False, "open", 0),
    }
    assert orders["5004"].cancelled_at == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    assert orders["5001"].placed_at == datetime(2026, 3, 1, 9, 0, 5, tzinfo=UTC)
    assert orders["5001"].name == "#5001"
    # no ledger entries at all: no points, and no signup bonus for pre-existing accounts
    assert await entries(session) == []


async def test_rewarding_past_orders_earns_each_paid_order_exactly_once(
    state: State, session: AsyncSession, shopify: FakeShopify, shop_id: int
) -> None:
    # given the history was first recorded without points
    await backfill_shop(state, shop_id)

    # when past orders are rewarded
    report = await backfill_shop(state, shop_id, reward_past_orders=True)

    # then the paid and partly refunded orders earn through the normal rules
    assert (report.orders, report.orders_recorded, report.orders_already_known) == (5, 0, 5)
    assert (report.orders_earned, report.points_awarded) == (2, 126)
    earned = [
        (entry.idempotency_key, entry.kind, entry.points, entry.status)
        for entry in await entries(session)
    ]
    assert earned == [
        ("order:5001:earn", "earn", 90, "available"),
        ("order:5002:earn", "earn", 36, "available"),
    ]
    points = await balances(session)
    assert points == {
        "ada@example.com": 90,
        None: 36,
        "grace@example.com": 0,
        "guest@example.com": 0,
    }
    orders = await orders_by_id(session)
    assert {key: row.points_earned for key, row in orders.items()} == {
        "5001": 90,
        "5002": 36,
        "5003": 0,
        "5004": 0,
        "5005": 0,
    }

    # and when it runs again, nothing changes
    counts = await row_counts(session)
    again = await backfill_shop(state, shop_id, reward_past_orders=True)
    assert (again.orders_recorded, again.orders_already_known, again.orders_earned) == (0, 5, 0)
    assert again.points_awarded == 0
    assert await row_counts(session) == counts
    assert await balances(session) == points
    assert await engine.verify(session) == []


async def test_rewarding_on_a_fresh_shop_also_earns_once(
    state: State, session: AsyncSession, shopify: FakeShopify, shop_id: int
) -> None:
    first = await backfill_shop(state, shop_id, reward_past_orders=True)
    counts = await row_counts(session)
    second = await backfill_shop(state, shop_id, reward_past_orders=True)

    assert (first.orders_recorded, first.orders_earned, first.points_awarded) == (5, 2, 126)
    assert (second.orders_recorded, second.orders_earned, second.points_awarded) == (0, 0, 0)
    assert await row_counts(session) == counts
    assert (await balances(session))["ada@example.com"] == 90


async def test_a_program_earning_on_fulfilment_rewards_only_fulfilled_orders(
    state: State, session: AsyncSession, shopify: FakeShopify, shop_id: int
) -> None:
    # given the shop's program earns when an order is fulfilled
    shop = await session.get(Shop, shop_id)
    assert shop is not None
    config = default_program("USD")
    await save_program(
        session,
        shop,
        config.model_copy(
            update={
                "earning": config.earning.model_copy(update={"trigger": EarningTrigger.fulfilled})
            }
        ),
        "test",
    )
    await session.commit()

    # when past orders are rewarded
    report = await backfill_shop(state, shop_id, reward_past_orders=True)

    # then only the fulfilled paid order earns; the unfulfilled one is only recorded
    assert (report.orders_recorded, report.orders_earned, report.points_awarded) == (5, 1, 90)
    assert [(entry.idempotency_key, entry.points) for entry in await entries(session)] == [
        ("order:5001:earn", 90)
    ]


def test_order_payload_uses_webhook_ids_and_current_quantities() -> None:
    node = order(7, customer=8, currentTotalPriceSet=money("9.99", "EUR"))
    node["customer"]["defaultEmailAddress"] = {"emailAddress": "x@example.com"}

    payload = order_payload(node, [line(9, 7, "3.33", quantity=4, current=1, discount="1.01")])

    assert payload["id"] == "7"
    assert payload["customer"] == {"id": "8", "email": "x@example.com"}
    assert payload["total_price_set"] == {"shop_money": {"amount": "9.99", "currency_code": "EUR"}}
    assert payload["line_items"] == [
        {
            "id": "9",
            "product_id": "109",
            "variant_id": "209",
            "quantity": 1,
            "price_set": {"shop_money": {"amount": "3.33"}},
            "discount_allocations": [{"amount_set": {"shop_money": {"amount": "0.25"}}}],
            "gift_card": False,
        }
    ]
    assert payload["financial_status"] == "paid"


async def test_a_finished_backfill_marks_the_shop_imported(
    state: State, session: AsyncSession, shopify: FakeShopify, shop_id: int
) -> None:
    # when the history is backfilled to the end
    await backfill_shop(state, shop_id)

    # then the shop says when the import started and that it finished after that
    shop = await session.get(Shop, shop_id, populate_existing=True)
    assert shop is not None
    assert shop.history_import_started_at is not None
    assert shop.history_imported_at is not None
    assert shop.history_import_started_at <= shop.history_imported_at


async def test_a_backfill_that_fails_part_way_leaves_the_shop_unfinished(
    state: State, session: AsyncSession, shopify: FakeShopify, shop_id: int
) -> None:
    # given Shopify's orders export cannot be downloaded
    shopify.router.get(ORDERS_URL).mock(return_value=httpx.Response(500))

    # when the backfill runs
    with pytest.raises(AdminUnavailable, match="failed with 500"):
        await backfill_shop(state, shop_id)

    # then the shop is marked started, not imported, so the hourly sweep sends it again
    shop = await session.get(Shop, shop_id, populate_existing=True)
    assert shop is not None
    assert (shop.history_import_started_at is not None, shop.history_imported_at) == (True, None)
