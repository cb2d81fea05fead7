"""Property tests: random sequences of orders, refunds, cancellations, duplicates, rule changes."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.db import unit_of_work
from app.events import CustomerInfo, OrderCancelled, OrderPaid, OrderRefunded
from app.ledger import engine
from app.models import LedgerEntry, Order, Shop
from app.program.config import EarningRule, TierProgram, default_program
from app.program.service import save_program
from app.state import State

_shop_numbers = itertools.count(1)
NOW = datetime(2026, 11, 1, tzinfo=UTC)
CUSTOMER = CustomerInfo("c-1", "prop@example.com", "Pat", "Prop", None, True)

order_amounts = st.lists(
    st.decimals(min_value=0, max_value=2000, places=2, allow_nan=False), min_size=1, max_size=4
)
operation = st.one_of(
    st.tuples(st.just("paid"), st.integers(0, 3)),
    st.tuples(st.just("refund"), st.integers(0, 3), st.integers(1, 100), st.integers(0, 2)),
    st.tuples(st.just("cancel"), st.integers(0, 3)),
    st.tuples(st.just("rate"), st.sampled_from(["0.5", "1", "2", "3.3", "0.01"])),
)


@dataclass
class Model:
    """What the ledger should say, computed independently of the engine."""

    amounts: list[Decimal]
    rate: Decimal = Decimal(1)
    earned: dict[int, int] = field(default_factory=dict)
    refunded: dict[int, Decimal] = field(default_factory=dict)
    cancelled: set[int] = field(default_factory=set)
    refund_ids: set[str] = field(default_factory=set)


def order_paid(index: int, amount: Decimal) -> OrderPaid:
    return OrderPaid(
        order_id=str(1000 + index),
        name=f"#{1000 + index}",
        customer=CUSTOMER,
        email=CUSTOMER.email,
        currency="USD",
        merchandise=amount,
        total=amount,
        lines=(),
        discount_codes=(),
        is_test=False,
        source_name="web",
        financial_status="paid",
        placed_at=NOW,
        landing_site=None,
        referring_site=None,
        note_attributes=(),
        tags=(),
        cancelled=False,
    )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(amounts=order_amounts, operations=st.lists(operation, max_size=14))
async def test_ledger_stays_exact_under_any_sequence(
    state: State, amounts: list[Decimal], operations: list[tuple[object, ...]]
) -> None:
    # given a fresh shop (tiers off, so the expected points depend on the rate alone)
    model = Model(amounts=amounts)
    async with unit_of_work(state.sessionmaker) as session:
        shop = Shop(domain=f"prop-{next(_shop_numbers)}.myshopify.com", currency="USD")
        session.add(shop)
        await session.flush()
        config = default_program("USD").model_copy(update={"tiers": TierProgram(enabled=False)})
        await save_program(session, shop, config, "test")
        shop_id = shop.id

    # when the operations arrive in this order (repeats included)
    for op in operations:
        async with unit_of_work(state.sessionmaker) as session:
            shop = await session.get(Shop, shop_id)
            assert shop is not None
            kind = op[0]
            if kind == "rate":
                rate = Decimal(str(op[1]))
                model.rate = rate
                current = default_program("USD").model_copy(
                    update={"tiers": TierProgram(enabled=False), "earning": EarningRule(rate=rate)}
                )
                await save_program(session, shop, current, "test")
                continue
            index = int(str(op[1])) % len(amounts)
            if kind == "paid":
                await engine.apply(session, shop, order_paid(index, amounts[index]))
                if index not in model.earned and index not in model.cancelled:
                    points = int(amounts[index] * model.rate // 1)
                    model.earned[index] = points
            elif kind == "refund":
                percent, serial = int(str(op[2])), int(str(op[3]))
                refund_id = f"r-{index}-{serial}"
                amount = (amounts[index] * percent / 100).quantize(Decimal("0.01"))
                await engine.apply(
                    session,
                    shop,
                    OrderRefunded(str(1000 + index), refund_id, amount, NOW),
                )
                if refund_id not in model.refund_ids:
                    model.refund_ids.add(refund_id)
                    model.refunded[index] = model.refunded.get(index, Decimal(0)) + amount
            else:
                await engine.apply(session, shop, OrderCancelled(str(1000 + index), NOW))
                model.cancelled.add(index)

    # then the cached balance equals the entries, and every order is exact
    async with state.sessionmaker() as session:
        assert await engine.verify(session, shop_id) == []
        earn_counts = dict(
            (
                await session.execute(
                    select(LedgerEntry.source_id, func.count())
                    .where(LedgerEntry.shop_id == shop_id, LedgerEntry.kind == "earn")
                    .group_by(LedgerEntry.source_id)
                )
            ).all()
        )
        assert all(count == 1 for count in earn_counts.values())
        orders = {
            int(order.order_id) - 1000: order
            for order in (
                await session.execute(select(Order).where(Order.shop_id == shop_id))
            ).scalars()
        }
        for index, expected_points in model.earned.items():
            order = orders[index]
            assert order.points_earned == expected_points
            assert 0 <= order.points_reversed <= order.points_earned
            if index in model.cancelled:
                assert order.points_reversed == order.points_earned
            elif expected_points and amounts[index] > 0:
                refunded = min(model.refunded.get(index, Decimal(0)), amounts[index])
                exact = Fraction(expected_points) * Fraction(refunded) / Fraction(amounts[index])
                assert order.points_reversed == math.floor(exact + Fraction(1, 2))
        for index in set(orders) - set(model.earned):
            assert orders[index].points_earned == 0
