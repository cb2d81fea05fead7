"""Batched earning gives what applying the same events one after another gives.

Each example builds two identical shops (same program, same history), applies a random
batch to one with `apply_orders` in one transaction, and the same events to the other one
at a time with `engine.apply`, in the order they came. Then every
member, order, ledger entry, outbox event and rollup figure of the two shops must match.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import unit_of_work
from app.events import CustomerInfo, OrderCancelled, OrderPaid, OrderRefunded
from app.ledger import engine
from app.ledger.batch import BatchConflict, OrderDelivery, apply_orders
from app.ledger.repository import OrderRepository
from app.models import LedgerEntry, Member, MemberEvent, Order, PointsDay, Shop
from app.program.config import (
    EarningRule,
    Participation,
    ProgramConfig,
    ReferralRule,
    Tier,
    TierProgram,
    default_program,
)
from app.program.service import save_program
from app.referrals.service import OrderSignals
from app.state import State

_shops = itertools.count(1)
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
CUSTOMERS = [
    CustomerInfo(f"70{n}", f"buyer{n}@example.com", f"Buyer{n}", "Test", None, n % 3 != 2)
    for n in range(5)
]


def base_program() -> ProgramConfig:
    return default_program("USD")


def with_silver_reward() -> ProgramConfig:
    config = default_program("USD")
    levels = tuple(
        tier.model_copy(update={"entry_reward": 50}) if tier.name == "Silver" else tier
        for tier in config.tiers.levels
    )
    return config.model_copy(update={"tiers": config.tiers.model_copy(update={"levels": levels})})


PROGRAMS = {
    "default": base_program,
    "pending": lambda: base_program().model_copy(update={"pending_days": 14}),
    "accounts only": lambda: base_program().model_copy(
        update={"participation": Participation.accounts_only}
    ),
    "minimum 40": lambda: base_program().model_copy(
        update={"earning": EarningRule(minimum_order=Decimal(40), rate=Decimal("1.5"))}
    ),
    "silver reward": with_silver_reward,
    "low first tier": lambda: base_program().model_copy(
        update={
            "tiers": TierProgram(
                levels=(Tier(name="Member", threshold=100), Tier(name="VIP", threshold=300)),
            )
        }
    ),
    "no tiers": lambda: base_program().model_copy(update={"tiers": TierProgram(enabled=False)}),
    "referrals": lambda: base_program().model_copy(update={"referral": ReferralRule(enabled=True)}),
}


def order(
    order_id: str,
    customer: CustomerInfo | None,
    amount: Decimal,
    *,
    email: str | None = None,
    is_test: bool = False,
    financial_status: str = "paid",
    customer_override: dict[str, Any] | None = None,
) -> OrderPaid:
    if customer is not None and customer_override:
        customer = dataclasses.replace(customer, **customer_override)
    return OrderPaid(
        order_id=order_id,
        name=f"#{order_id}",
        customer=customer,
        email=email or (customer.email if customer else None),
        currency="USD",
        merchandise=amount,
        total=amount + Decimal("4.99"),
        lines=(),
        discount_codes=(),
        is_test=is_test,
        source_name="web",
        financial_status=financial_status,
        placed_at=NOW,
        landing_site=None,
        referring_site=None,
        note_attributes=(),
        tags=(),
        cancelled=False,
    )


amounts = st.decimals(min_value=0, max_value=900, places=2, allow_nan=False)
# What each customer was before the batch.
histories = st.lists(
    st.sampled_from(["none", "member", "big member", "guest", "old name"]), min_size=5, max_size=5
)
# One order of the batch: customer (-1: a guest checkout by a new email, -2: no one, -3 and
# -4: a guest checkout with a known customer's email, as given or in another case, 5:
# customer 700 without any email), order number, amount, test order, which topic brought
# it (or an orders/cancelled for that order number).
batch_orders = st.lists(
    st.tuples(
        st.integers(-4, 5),
        st.integers(0, 7),
        amounts,
        st.booleans(),
        st.sampled_from(
            ["paid", "paid", "paid", "created-paid", "created-pending", "fulfilled", "cancelled"]
        ),
    ),
    min_size=1,
    max_size=10,
)
# Orders known before the batch (recorded, not earning), and refunds that came first.
known_orders = st.sets(st.integers(0, 7), max_size=2)
early_refunds = st.sets(st.integers(0, 7), max_size=2)


def history(customer: CustomerInfo, kind: str, index: int) -> list[OrderPaid]:
    if kind == "member":
        return [order(f"h{index}", customer, Decimal("120.00"))]
    if kind == "big member":
        return [order(f"h{index}", customer, Decimal("480.00"))]
    if kind == "guest":
        return [order(f"h{index}", None, Decimal("30.00"), email=customer.email)]
    if kind == "old name":
        return [
            order(f"h{index}", customer, Decimal("60.00"), customer_override={"first_name": "Old"})
        ]
    return []


OCCASIONS = {
    "paid": (engine.OrderOccasion.paid, "paid"),
    "created-paid": (engine.OrderOccasion.created, "paid"),
    "created-pending": (engine.OrderOccasion.created, "pending"),
    "fulfilled": (engine.OrderOccasion.fulfilled, "paid"),
}


# Customer 700 again, in an order that carries no email at all (a phone-only checkout).
NO_EMAIL = dataclasses.replace(CUSTOMERS[0], email=None)


def batch_items(spec: list[tuple[int, int, Decimal, bool, str]]) -> list[OrderDelivery]:
    items: list[OrderDelivery] = []
    for who, number, amount, is_test, topic in spec:
        if topic == "cancelled":
            cancel = OrderCancelled(f"o{number}", NOW)
            items.append(OrderDelivery(cancel, engine.OrderOccasion.updated, OrderSignals))
            continue
        customer = NO_EMAIL if who == 5 else CUSTOMERS[who] if who >= 0 else None
        email = {
            -1: "walkin@example.com",
            -3: CUSTOMERS[0].email,
            -4: f"  {str(CUSTOMERS[1].email).upper()}",
        }.get(who)
        occasion, status = OCCASIONS[topic]
        event = order(
            f"o{number}", customer, amount, email=email, is_test=is_test, financial_status=status
        )
        items.append(OrderDelivery(event, occasion, OrderSignals))
    return items


async def make_shop(
    state: State,
    config: ProgramConfig,
    kinds: list[str],
    known: set[int],
    refunds: set[int],
) -> int:
    async with unit_of_work(state.sessionmaker) as session:
        shop = Shop(domain=f"batch-{next(_shops)}.myshopify.com", currency="USD")
        session.add(shop)
        await session.flush()
        await save_program(session, shop, config, "test")
        shop_id = shop.id
    events: list[tuple[Any, engine.OrderOccasion]] = []
    for index, (customer, kind) in enumerate(zip(CUSTOMERS, kinds, strict=True)):
        events.extend(
            (event, engine.OrderOccasion.paid) for event in history(customer, kind, index)
        )
    for number in sorted(known):
        pending = order(
            f"o{number}", CUSTOMERS[number % 5], Decimal("75.00"), financial_status="pending"
        )
        events.append((pending, engine.OrderOccasion.created))
    for number in sorted(refunds):
        events.append(
            (
                OrderRefunded(f"o{number}", f"r{number}", Decimal("10.00"), NOW),
                engine.OrderOccasion.paid,
            )
        )
    for earlier, occasion in events:
        async with unit_of_work(state.sessionmaker) as session:
            shop = await session.get(Shop, shop_id)
            assert shop is not None
            await engine.apply(session, shop, earlier, occasion=occasion)
    return shop_id


async def snapshot(session: AsyncSession, shop_id: int) -> dict[str, Any]:
    """The shop's state with database ids and clocks taken out."""
    members = list(await session.scalars(select(Member).where(Member.shop_id == shop_id)))
    key = {m.id: m.customer_id or f"guest:{m.email}" for m in members}

    def unkeyed(text: str) -> str:
        """Member ids in keys ("member:<id>:created") as the member's key, in one pass."""
        text = re.sub(r"\d{4}-\d{2}-\d{2}", "<day>", text)
        return re.sub(r":(\d+)(?=:|-)", lambda m: f":{key.get(int(m[1]), m[1])}", text)

    orders = await session.scalars(select(Order).where(Order.shop_id == shop_id))
    entries = await session.scalars(select(LedgerEntry).where(LedgerEntry.shop_id == shop_id))
    events = await session.scalars(select(MemberEvent).where(MemberEvent.shop_id == shop_id))
    issued = await session.execute(
        select(PointsDay.day, func.sum(PointsDay.issued), func.sum(PointsDay.redeemed))
        .where(PointsDay.shop_id == shop_id)
        .group_by(PointsDay.day)
    )
    return {
        "members": sorted(
            (
                key[m.id], m.email, m.first_name, m.last_name, m.phone, m.is_account,
                m.points_balance, m.pending_points, m.lifetime_points, m.tier_name,
                m.sync_dirty_at is None,
            )
            for m in members
        ),
        "orders": sorted(
            (
                o.order_id, key.get(o.member_id or 0), o.merchandise_amount, o.total_amount,
                o.points_earned, o.points_reversed, o.program_version_id is None, o.status,
            )
            for o in orders
        ),
        "entries": sorted(
            (
                unkeyed(e.idempotency_key), key[e.member_id], e.points, e.kind, e.status,
                e.source_type, e.source_id, e.amount, e.reason, e.available_at is None,
            )
            for e in entries
        ),
        "events": sorted(
            (
                e.name, unkeyed(e.unique_id), key[e.member_id],
                orjson.dumps(e.properties, option=orjson.OPT_SORT_KEYS).decode(),
            )
            for e in events
        ),
        "rollup": sorted((row[1], row[2]) for row in issued),
    }  # fmt: skip


def differences(one: dict[str, Any], two: dict[str, Any]) -> dict[str, Any]:
    """What only the batch has, and what only the one-by-one shop has, per kind of row."""
    return {
        name: {
            "batch only": set(one[name]) - set(two[name]),
            "alone only": set(two[name]) - set(one[name]),
        }
        for name in one
        if one[name] != two[name]
    }


async def apply_alone(state: State, shop_id: int, items: Sequence[OrderDelivery]) -> None:
    for item in items:
        async with unit_of_work(state.sessionmaker) as session:
            shop = await session.get(Shop, shop_id)
            assert shop is not None
            await engine.apply(
                session, shop, item.event, occasion=item.occasion, signals=item.signals()
            )


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    program=st.sampled_from(sorted(PROGRAMS)),
    kinds=histories,
    spec=batch_orders,
    known=known_orders,
    refunds=early_refunds,
)
# Found by this test: an order created for one customer, refunded, then paid by another.
@example(
    program="pending",
    kinds=["none"] * 5,
    spec=[(1, 0, Decimal("10.53"), False, "paid")],
    known={0},
    refunds={0},
)
async def test_a_batch_ends_where_the_same_events_one_by_one_end(
    state: State,
    program: str,
    kinds: list[str],
    spec: list[tuple[int, int, Decimal, bool, str]],
    known: set[int],
    refunds: set[int],
) -> None:
    # given two shops with the same program and the same history
    config = PROGRAMS[program]()
    batched = await make_shop(state, config, kinds, known, refunds)
    alone = await make_shop(state, config, kinds, known, refunds)

    # when one takes the orders as a batch, in one transaction
    items = batch_items(spec)
    async with unit_of_work(state.sessionmaker) as session:
        shop = await session.get(Shop, batched)
        assert shop is not None
        applied = await apply_orders(session, shop, items)
    # and the other takes the same orders one by one, in the order they came
    await apply_alone(state, alone, items)

    # then both shops hold exactly the same members, orders, entries, events and rollups
    async with state.sessionmaker() as session:
        one, two = await snapshot(session, batched), await snapshot(session, alone)
    assert one == two, differences(one, two)
    # and the batch applied every event exactly once
    assert sorted(map(id, applied)) == sorted(map(id, items))


async def test_common_case_orders_are_written_together_in_a_few_statements(
    state: State,
) -> None:
    # given a shop on the default program with two known members
    config = base_program()
    shop_id = await make_shop(
        state, config, ["member", "member", "none", "none", "none"], set(), set()
    )
    spec = [(n, n, Decimal("50.00"), False, "paid") for n in range(5)]
    statements: list[str] = []

    # when five orders from five different customers arrive as one batch
    async with unit_of_work(state.sessionmaker) as session:
        shop = await session.get(Shop, shop_id)
        assert shop is not None
        await engine.program_for(session, shop)  # the pipeline has read it with the shop

        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(statement.split()[0])

        sync_engine = state.engine.sync_engine
        event.listen(sync_engine, "before_cursor_execute", count)
        try:
            applied = await apply_orders(session, shop, batch_items(spec))
        finally:
            event.remove(sync_engine, "before_cursor_execute", count)

    # then all five were written together, with one statement per table and three reads
    assert len(applied) == 5
    assert statements == [
        "SELECT",  # members with their tier points
        "SELECT",  # which orders Stamp knows already
        "SELECT",  # refunds recorded before these orders
        "INSERT",  # new members
        "INSERT",  # orders
        "SELECT",  # refunds again: none arrived while the orders were written
        "INSERT",  # ledger entries
        "UPDATE",  # balances
        "INSERT",  # outbox: joined and earned
    ]  # and the daily rollup, at commit
    async with state.sessionmaker() as session:
        rows = await session.execute(
            select(Member.customer_id, Member.points_balance).where(Member.shop_id == shop_id)
        )
        balances = {customer_id: balance for customer_id, balance in rows}
    assert balances == {"700": 170, "701": 170, "702": 50, "703": 50, "704": 50}


async def apply_batch(
    state: State, shop_id: int, spec: list[tuple[int, int, Decimal, bool, str]]
) -> None:
    """The orders of `spec` as one batch, in their own transaction."""
    async with unit_of_work(state.sessionmaker) as session:
        shop = await session.get(Shop, shop_id)
        assert shop is not None
        await apply_orders(session, shop, batch_items(spec))


async def test_a_new_members_order_written_meanwhile_sends_the_batch_one_by_one(
    state: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given order o3 stored for customer 703, which the batch's read does not see (as if
    # another transaction had written it just after)
    shop_id = await make_shop(state, base_program(), ["none"] * 5, {3}, set())
    async with state.sessionmaker() as session:
        before = await snapshot(session, shop_id)

    async def sees_nothing(self: Any, shop_id: int, order_ids: list[str]) -> dict[str, int]:
        return {}

    monkeypatch.setattr(OrderRepository, "members_of", sees_nothing)

    # when o3 comes paid by customer 701, who is new and would be made holding its points
    with pytest.raises(BatchConflict, match="member made by this batch"):
        await apply_batch(state, shop_id, [(1, 3, Decimal("40.00"), False, "paid")])

    # then the batch is refused whole and nothing of it was written
    async with state.sessionmaker() as session:
        assert await snapshot(session, shop_id) == before


async def test_a_refund_recorded_meanwhile_sends_the_batch_one_by_one(
    state: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a refund of o3 stored before o3 earned, which the batch's first read does not
    # see (as if another transaction had committed it just after)
    shop_id = await make_shop(state, base_program(), ["none"] * 5, set(), {3})
    async with state.sessionmaker() as session:
        before = await snapshot(session, shop_id)
    real_read = OrderRepository.refunded_before
    reads: list[list[str]] = []

    async def first_read_sees_nothing(
        self: OrderRepository, shop_id: int, order_ids: list[str]
    ) -> set[str]:
        reads.append(order_ids)
        return set() if len(reads) == 1 else await real_read(self, shop_id, order_ids)

    monkeypatch.setattr(OrderRepository, "refunded_before", first_read_sees_nothing)

    # when o3 comes paid
    with pytest.raises(BatchConflict, match="a refund arrived"):
        await apply_batch(state, shop_id, [(1, 3, Decimal("40.00"), False, "paid")])

    # then the second read caught it, the batch is refused whole and nothing was written
    assert reads == [["o3"], ["o3"]]
    async with state.sessionmaker() as session:
        assert await snapshot(session, shop_id) == before


async def test_each_event_alone_in_a_batch_sees_what_the_one_before_changed(
    state: State,
) -> None:
    # given a shop, and a batch in which order o1 arrives first with no buyer, then from a
    # walk-in guest (who becomes its member), then from a customer already in the batch
    config = base_program()
    spec = [
        (0, 0, Decimal("10.00"), False, "paid"),
        (-2, 1, Decimal("20.00"), False, "paid"),
        (-1, 1, Decimal("20.00"), False, "paid"),
        (0, 1, Decimal("20.00"), False, "paid"),
    ]
    batched = await make_shop(state, config, ["none"] * 5, set(), set())
    alone = await make_shop(state, config, ["none"] * 5, set(), set())

    # when one shop takes them as a batch and the other one by one
    async with unit_of_work(state.sessionmaker) as session:
        shop = await session.get(Shop, batched)
        assert shop is not None
        applied = await apply_orders(session, shop, batch_items(spec))
    await apply_alone(state, alone, applied)

    # then o1 belongs to the walk-in guest in both: the first buyer to claim it keeps it
    async with state.sessionmaker() as session:
        one, two = await snapshot(session, batched), await snapshot(session, alone)
    assert [row[:2] for row in one["orders"]] == [("o0", "700"), ("o1", "guest:walkin@example.com")]
    assert one == two
