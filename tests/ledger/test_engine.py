"""The points engine end to end: signed Shopify webhooks in, exact ledger out."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.ledger import engine
from app.models import LedgerEntry, Member, Order, Shop
from app.program.config import EarningTrigger, ProgramConfig
from app.program.service import current_config, ensure_default_program, save_program
from app.settings import Settings
from tests.builders import api_key_for, create_shop, hold_points, shopify_webhook

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "shopify"
URL = "/webhooks/shopify"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


async def deliver(
    client: httpx.AsyncClient, settings: Settings, topic: str, payload: Any, **kw: Any
) -> dict[str, Any]:
    body, headers = shopify_webhook(settings, topic, payload, **kw)
    response = await client.post(URL, content=body, headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def installed_shop(session: AsyncSession, settings: Settings) -> Shop:
    shop = await create_shop(session, settings)
    await ensure_default_program(session, shop)
    await session.commit()
    return shop


async def entries(session: AsyncSession) -> list[tuple[str, int, str, str]]:
    await session.rollback()
    result = await session.execute(select(LedgerEntry).order_by(LedgerEntry.id))
    return [(e.kind, e.points, e.status, e.idempotency_key) for e in result.scalars()]


async def member(session: AsyncSession, **where: Any) -> Member:
    await session.rollback()
    query = select(Member).execution_options(populate_existing=True)
    for name, value in where.items():
        query = query.where(getattr(Member, name) == value)
    return (await session.execute(query)).scalar_one()


async def no_drift(session: AsyncSession) -> None:
    await session.rollback()
    assert await engine.verify(session) == []


async def test_worked_example_discounted_order_then_one_line_refunded(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given the default USD program and the 3-line order: 2 x 25.00 and 1 x 30.00 with a 10%
    # code allocated 5.00 and 3.00, a 20.00 gift card, 7.50 shipping and 6.40 tax
    await installed_shop(session, settings)

    # when it is paid: merchandise = 50 - 5 + 30 - 3 = 72.00 → floor(72 × 1 × 1) = 72 points
    assert await deliver(client, settings, "orders/paid", fixture("orders_paid")) == {
        "result": "processed"
    }
    ada = await member(session, customer_id="7001")
    assert (ada.points_balance, ada.lifetime_points, ada.email) == (
        72,
        72,
        "ada.lovelace@example.com",
    )

    # and line B (subtotal 27.00) is refunded: round_half_up(72 × 27 / 72) = 27 back
    await deliver(client, settings, "refunds/create", fixture("refunds_create"))

    # then the ledger holds exactly the earning and one proportional reversal
    assert await entries(session) == [
        ("earn", 72, "available", "order:5912345678901:earn"),
        ("reverse", -27, "available", "refund:990001:reverse"),
    ]
    ada = await member(session, customer_id="7001")
    assert (ada.points_balance, ada.lifetime_points) == (45, 45)
    order = (await session.execute(select(Order))).scalar_one()
    assert (order.merchandise_amount, order.points_earned, order.points_reversed) == (
        Decimal("72.00"),
        72,
        27,
    )
    await no_drift(session)


async def test_presentment_currency_order_earns_on_shop_money(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await installed_shop(session, settings)
    payload = fixture("orders_paid_presentment")
    shop_money = payload["current_subtotal_price_set"]["shop_money"]

    await deliver(client, settings, "orders/paid", payload)

    [(kind, points, status, _)] = await entries(session)
    assert (kind, status) == ("earn", "available")
    order = (await session.execute(select(Order))).scalar_one()
    assert order.currency == shop_money["currency_code"] == "USD"
    assert points == int(order.merchandise_amount)  # floor of shop money, not presentment
    presentment = Decimal(payload["current_subtotal_price_set"]["presentment_money"]["amount"])
    assert order.merchandise_amount != presentment


async def test_guest_order_later_claimed_by_a_new_account(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given a guest order (no customer object) paid with an email
    await installed_shop(session, settings)
    guest = fixture("orders_paid_guest")
    await deliver(client, settings, "orders/paid", guest)
    earned = (await entries(session))[0][1]
    guest_member = await member(session, email=guest["email"].strip().lower())
    assert (guest_member.customer_id, guest_member.is_account) == (None, False)

    # when the shopper creates an account with that email
    account = fixture("customers_create")
    account["email"] = guest["email"]
    await deliver(client, settings, "customers/create", account)

    # then the same member is claimed: it gets the customer id and one signup bonus
    claimed = await member(session, email=guest["email"].strip().lower())
    assert claimed.id == guest_member.id
    assert (claimed.customer_id, claimed.is_account) == (str(account["id"]), True)
    assert claimed.points_balance == earned + 100
    assert [e[0] for e in await entries(session)] == ["earn", "signup"]
    await no_drift(session)


async def test_guest_checkout_customer_is_not_an_account_until_activated(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await installed_shop(session, settings)
    guest_record = fixture("customers_create_guest")

    await deliver(client, settings, "customers/create", guest_record)
    assert await entries(session) == []

    activated = copy.deepcopy(guest_record)
    activated["state"] = "enabled"
    await deliver(client, settings, "customers/update", activated)
    await deliver(client, settings, "customers/update", activated)  # a later profile edit

    assert await entries(session) == [("signup", 100, "available", f"signup:{guest_record['id']}")]


async def test_existing_account_seen_first_on_update_gets_no_signup_bonus(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await installed_shop(session, settings)

    await deliver(client, settings, "customers/update", fixture("customers_create"))

    assert await entries(session) == []
    assert (await member(session, customer_id=str(fixture("customers_create")["id"]))).is_account


async def test_customer_update_follows_an_email_change(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await installed_shop(session, settings)
    customer = fixture("customers_create")
    await deliver(client, settings, "customers/create", customer)

    changed = dict(customer, email="New.Address@Example.com")
    await deliver(client, settings, "customers/update", changed)

    assert (await member(session, customer_id=str(customer["id"]))).email == (
        "new.address@example.com"
    )


async def test_many_deliveries_of_one_order_earn_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given the same order arriving as orders/create (already paid), orders/paid twice
    # (distinct webhook ids, as Shopify retries), and orders/fulfilled
    await installed_shop(session, settings)
    order = fixture("orders_paid")

    for topic in ("orders/create", "orders/paid", "orders/paid", "orders/fulfilled"):
        await deliver(client, settings, topic, order)

    assert await entries(session) == [("earn", 72, "available", "order:5912345678901:earn")]
    await no_drift(session)


async def test_refund_before_the_order_is_reversed_when_the_order_earns(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await installed_shop(session, settings)

    await deliver(client, settings, "refunds/create", fixture("refunds_create"))
    assert await entries(session) == []
    await deliver(client, settings, "orders/paid", fixture("orders_paid"))

    assert await entries(session) == [
        ("earn", 72, "available", "order:5912345678901:earn"),
        ("reverse", -27, "available", "order:5912345678901:early-refunds:reverse"),
    ]
    await no_drift(session)


async def test_an_order_paid_by_another_customer_earns_and_is_reversed_for_the_payer(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given pending points, an order created unpaid for Ada (7001) and refunded in part
    shop = await installed_shop(session, settings)
    await hold_points(session, shop)
    created = dict(fixture("orders_paid"), financial_status="pending")
    await deliver(client, settings, "orders/create", created)
    await deliver(client, settings, "refunds/create", fixture("refunds_create"))

    # when it is paid with Grace (7002) as its customer
    grace = dict(created["customer"], id=7002, email="grace@example.com")
    paid = dict(created, financial_status="paid", customer=grace, email="grace@example.com")
    await deliver(client, settings, "orders/paid", paid)

    # then Grace earns 72 pending and the early refund takes 27 of them back from her
    assert await entries(session) == [
        ("earn", 72, "pending", "order:5912345678901:earn"),
        ("reverse", -27, "pending", "order:5912345678901:early-refunds:reverse"),
    ]
    grace_member = await member(session, customer_id="7002")
    assert (grace_member.points_balance, grace_member.pending_points) == (0, 45)
    grace_id = grace_member.id
    ada = await member(session, customer_id="7001")
    assert (ada.points_balance, ada.pending_points, ada.lifetime_points) == (0, 0, 0)
    assert (await session.execute(select(Order.member_id))).scalar_one() == grace_id
    await no_drift(session)


async def test_cancellation_reverses_everything_and_a_late_paid_earns_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await installed_shop(session, settings)
    order = fixture("orders_paid")
    await deliver(client, settings, "orders/paid", order)
    await deliver(client, settings, "refunds/create", fixture("refunds_create"))

    cancelled = dict(order, cancelled_at="2026-11-20T12:00:00+00:00", cancel_reason="customer")
    await deliver(client, settings, "orders/cancelled", cancelled)
    await deliver(client, settings, "orders/paid", order)

    assert await entries(session) == [
        ("earn", 72, "available", "order:5912345678901:earn"),
        ("reverse", -27, "available", "refund:990001:reverse"),
        ("reverse", -45, "available", "order:5912345678901:cancel:reverse"),
    ]
    assert (await member(session, customer_id="7001")).points_balance == 0


async def test_cancellation_before_payment_means_the_order_never_earns(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await installed_shop(session, settings)
    order = fixture("orders_paid")
    cancelled = dict(order, cancelled_at="2026-11-20T12:00:00+00:00")

    await deliver(client, settings, "orders/cancelled", cancelled)
    await deliver(client, settings, "orders/paid", order)

    assert await entries(session) == []


async def test_test_orders_earn_nothing_unless_the_merchant_says_so(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await installed_shop(session, settings)
    test_order = dict(fixture("orders_paid"), test=True)
    await deliver(client, settings, "orders/paid", test_order)
    assert await entries(session) == []

    config = await current_config(session, shop)
    earning = config.earning.model_copy(update={"include_test_orders": True})
    await save_program(session, shop, config.model_copy(update={"earning": earning}), "test")
    await session.commit()
    second = dict(test_order, id=5912345678902, name="#1002")
    await deliver(client, settings, "orders/paid", second)

    assert [(e[0], e[1]) for e in await entries(session)] == [("earn", 72)]


async def test_pos_orders_earn_like_online_ones(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await installed_shop(session, settings)
    pos = fixture("orders_paid_pos")

    await deliver(client, settings, "orders/paid", pos)

    earned = [(e[0], e[1]) for e in await entries(session)]
    order = (await session.execute(select(Order))).scalar_one()
    assert order.source_name == "pos"
    assert earned == [("earn", int(order.merchandise_amount))]


async def test_rule_change_between_earning_and_refund_reverses_at_the_old_rate(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given an order earned at 1 point per dollar
    shop = await installed_shop(session, settings)
    await deliver(client, settings, "orders/paid", fixture("orders_paid"))

    # when the merchant triples the rate, and then line B is refunded
    config = await current_config(session, shop)
    tripled = config.earning.model_copy(update={"rate": Decimal(3)})
    await save_program(session, shop, config.model_copy(update={"earning": tripled}), "test")
    await session.commit()
    await deliver(client, settings, "refunds/create", fixture("refunds_create"))

    # then the reversal is 27 (the old rate), not 81
    assert [(e[0], e[1]) for e in await entries(session)] == [("earn", 72), ("reverse", -27)]


async def test_pending_points_are_not_spendable_and_a_full_refund_cancels_them(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await installed_shop(session, settings)
    await hold_points(session, shop)
    order = fixture("orders_paid")

    await deliver(client, settings, "orders/paid", order)
    ada = await member(session, customer_id="7001")
    assert (ada.points_balance, ada.pending_points, ada.lifetime_points) == (0, 72, 0)

    # a partial refund inside the window: the reversal is pending too (72 - 27 = 45 pending)
    await deliver(client, settings, "refunds/create", fixture("refunds_create"))
    ada = await member(session, customer_id="7001")
    assert (ada.points_balance, ada.pending_points) == (0, 45)

    # a cancellation inside the window cancels the pending points outright
    cancelled = dict(order, cancelled_at="2026-11-20T12:00:00+00:00")
    await deliver(client, settings, "orders/cancelled", cancelled)
    assert [(e[0], e[1], e[2]) for e in await entries(session)] == [
        ("earn", 72, "cancelled"),
        ("reverse", -27, "cancelled"),
    ]
    ada = await member(session, customer_id="7001")
    assert (ada.points_balance, ada.pending_points) == (0, 0)
    await no_drift(session)


async def test_reaching_a_tier_raises_the_multiplier_for_later_orders(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given a customer who earns 72 + 100 (signup) and then a 400.00 order: 572 ≥ 500 → Silver
    await installed_shop(session, settings)
    await deliver(client, settings, "customers/create", fixture("customers_create"))
    customer_id = str(fixture("customers_create")["id"])
    big = copy.deepcopy(fixture("orders_paid"))
    big["customer"]["id"] = int(customer_id)
    big["customer"]["email"] = fixture("customers_create")["email"]
    big["email"] = fixture("customers_create")["email"]
    await deliver(client, settings, "orders/paid", big)
    big_2 = copy.deepcopy(big)
    big_2["id"], big_2["name"] = 5912345678903, "#1003"
    for line in big_2["line_items"]:
        if not line["gift_card"]:
            line["price"] = str(Decimal(line["price"]) * 5)
            line["price_set"]["shop_money"]["amount"] = line["price"]
            for allocation in line["discount_allocations"]:
                amount = str(Decimal(allocation["amount"]) * 5)
                allocation["amount"] = amount
                allocation["amount_set"]["shop_money"]["amount"] = amount
    await deliver(client, settings, "orders/paid", big_2)  # 360.00 → 360 points at Bronze
    silver = await member(session, customer_id=customer_id)
    assert (silver.points_balance, silver.tier_name) == (100 + 72 + 360, "Silver")

    # when the next 72.00 order is paid
    big_3 = dict(big, id=5912345678904, name="#1004")
    await deliver(client, settings, "orders/paid", big_3)

    # then it earns floor(72 × 1.25) = 90
    assert (await entries(session))[-1][:2] == ("earn", 90)
    await no_drift(session)


async def test_accounts_only_participation_ignores_guest_orders(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await installed_shop(session, settings)
    config = await current_config(session, shop)
    payload = config.model_dump(mode="json") | {"participation": "accounts_only"}
    await save_program(session, shop, ProgramConfig.model_validate(payload), "test")
    await session.commit()

    await deliver(client, settings, "orders/paid", fixture("orders_paid_guest"))

    assert await entries(session) == []


async def test_malformed_order_becomes_a_dead_letter_and_changes_no_balance(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await installed_shop(session, settings)
    broken = copy.deepcopy(fixture("orders_paid"))
    broken["line_items"][0]["price_set"]["shop_money"]["amount"] = "twenty-five"

    result = await deliver(client, settings, "orders/paid", broken)

    assert result == {"result": "dead_letter"}
    assert await entries(session) == []
    await session.rollback()
    assert (await session.execute(select(Member))).scalars().all() == []


async def test_fulfilled_trigger_earns_on_fulfilment_not_payment(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await installed_shop(session, settings)
    config = await current_config(session, shop)
    earning = config.earning.model_copy(update={"trigger": EarningTrigger.fulfilled})
    await save_program(session, shop, config.model_copy(update={"earning": earning}), "test")
    await session.commit()
    order = fixture("orders_paid")

    await deliver(client, settings, "orders/paid", order)
    assert await entries(session) == []
    await deliver(client, settings, "orders/fulfilled", order)

    assert await entries(session) == [("earn", 72, "available", "order:5912345678901:earn")]


async def test_reaching_a_tier_pays_its_entry_reward_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given Silver (500) with a 50-point entry reward, and a member at 72 + 100 signup
    shop = await installed_shop(session, settings)
    config = await current_config(session, shop)
    levels = tuple(
        level.model_copy(update={"entry_reward": 50}) if level.name == "Silver" else level
        for level in config.tiers.levels
    )
    tiers = config.tiers.model_copy(update={"levels": levels})
    await save_program(session, shop, config.model_copy(update={"tiers": tiers}), "test")
    await session.commit()
    await deliver(client, settings, "customers/create", fixture("customers_create"))
    await deliver(client, settings, "orders/paid", fixture("orders_paid"))
    member_row = await member(session, customer_id="7001")
    assert member_row.tier_name == "Bronze"

    # when an adjustment of 400 lifts the member to 572 points in the window
    headers = await api_key_for(session, await session.get(Shop, shop.id))  # type: ignore[arg-type]
    response = await client.post(
        "/api/v1/members/7001/adjustments",
        headers=headers,
        json={"points": 400, "reason": "Migration", "idempotency_key": "m-1"},
    )
    assert response.status_code == 201
    await deliver(client, settings, "orders/paid", dict(fixture("orders_paid"), id=2, name="#2"))

    # then Silver is reached and its entry reward is paid once
    silver = await member(session, customer_id="7001")
    silver_id, silver_tier = silver.id, silver.tier_name
    assert silver_tier == "Silver"
    assert [e for e in await entries(session) if e[3].startswith("tier-entry:")] == [
        ("earn", 50, "available", f"tier-entry:{silver_id}:Silver")
    ]
    await no_drift(session)
