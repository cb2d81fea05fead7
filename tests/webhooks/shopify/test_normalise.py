"""Shopify payloads → domain events, from realistic fixtures (API 2026-07 shapes)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.events import (
    CustomerCreated,
    CustomerInfo,
    CustomerUpdated,
    OrderCancelled,
    OrderLine,
    OrderPaid,
)
from app.program.config import default_program
from app.program.rules import order_earning, reversal_for_refund
from webhooks.shopify.normalise import (
    PayloadError,
    customer_event,
    is_account_state,
    order_event,
    refund_event,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "shopify"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def paid(payload: dict[str, Any]) -> OrderPaid:
    event = order_event("orders/paid", payload)
    assert isinstance(event, OrderPaid)
    return event


# --- the worked example -------------------------------------------------------------------


def test_worked_example_order_refund_and_points() -> None:
    # Given the 3-line order: A 2 x 25.00, B 1 x 30.00, C a 20.00 gift card, with WELCOME10
    # (10%) allocated as A 5.00 and B 3.00, shipping 7.50 and tax 6.40.
    payload = load("orders_paid")

    # When it is normalised
    order = paid(payload)

    # Then merchandise = (2 x 25.00 - 5.00) + (1 x 30.00 - 3.00) = 45.00 + 27.00 = 72.00;
    # the gift card (20.00), shipping (7.50) and tax (6.40) are left out.
    assert order.merchandise == Decimal("72.00")
    # and the total is 100.00 - 8.00 + 7.50 + 6.40 = 105.90.
    assert order.total == Decimal("105.90")
    assert order.lines == (
        OrderLine(
            "14001", "8001", "9001", 2, Decimal("25.00"), Decimal("5.00"), False, Decimal("45.00")
        ),
        OrderLine(
            "14002", "8002", "9002", 1, Decimal("30.00"), Decimal("3.00"), False, Decimal("27.00")
        ),
        OrderLine(
            "14003", "8003", "9003", 1, Decimal("20.00"), Decimal("0"), True, Decimal("20.00")
        ),
    )

    # When the default USD program (1 point per 1.00, Bronze x1) scores it
    earned = order_earning(order, default_program("USD"), Decimal(1))
    # Then it earns floor(72.00 x 1 x 1) = 72 points.
    assert earned == 72

    # When line B is refunded (subtotal 27.00 after its 3.00 discount, tax 2.16 apart)
    refund = refund_event(load("refunds_create"))
    assert refund.merchandise_refunded == Decimal("27.00")
    # Then it reverses round_half_up(72 x 27.00 / 72.00) = round_half_up(27) = 27.
    assert (
        reversal_for_refund(72, order.merchandise, Decimal(0), refund.merchandise_refunded, 0) == 27
    )


def test_order_paid_carries_every_field_the_engine_needs() -> None:
    # Given the worked-example order
    # When it is normalised
    order = paid(load("orders_paid"))

    # Then ids, customer, attribution and status are all there, normalised
    assert order.order_id == "5912345678901"
    assert order.name == "#1042"
    assert order.customer == CustomerInfo(
        customer_id="7001",
        email="ada.lovelace@example.com",
        first_name="Ada",
        last_name="Lovelace",
        phone="+12075550142",
        is_account=True,
    )
    assert order.email == "ada.lovelace@example.com"
    assert order.currency == "USD"
    assert order.discount_codes == ("WELCOME10",)
    assert order.is_test is False
    assert order.source_name == "web"
    assert order.financial_status == "paid"
    assert order.placed_at == datetime(2026, 9, 14, 14, 21, 9, tzinfo=UTC)
    assert order.landing_site == "/?ref=ADA-7F3K"
    assert order.referring_site == "https://www.instagram.com/"
    assert order.note_attributes == (("stamp_ref", "ADA-7F3K"),)
    assert order.tags == ("spring-sale", "vip")
    assert order.cancelled is False


@pytest.mark.parametrize("topic", ["orders/create", "orders/updated", "orders/fulfilled"])
def test_other_order_topics_give_the_same_order(topic: str) -> None:
    # Given the same order arriving through another topic
    # When it is normalised
    event = order_event(topic, load("orders_paid"))

    # Then it is the same OrderPaid (the engine is idempotent on the order id)
    assert event == paid(load("orders_paid"))


# --- presentment currency -----------------------------------------------------------------


def test_presentment_order_uses_shop_money_not_what_the_shopper_paid() -> None:
    # Given a USD shop where the shopper paid in EUR: 2 x 54.00 USD (50.00 EUR) with a
    # 10.80 USD (10.00 EUR) code, 10.80 USD shipping, 4.32 USD tax
    payload = load("orders_paid_presentment")

    # When it is normalised
    order = paid(payload)

    # Then amounts are shop money: 2 x 54.00 - 10.80 = 97.20 USD (not 90.00 EUR)
    assert order.currency == "USD"
    assert order.merchandise == Decimal("97.20")
    assert order.total == Decimal("112.32")
    assert order.lines[0].unit_price == Decimal("54.00")
    assert order.lines[0].discount == Decimal("10.80")


def test_shop_money_wins_even_when_the_plain_field_disagrees() -> None:
    # Given a payload whose plain price is in presentment money but price_set is not
    payload = load("orders_paid_presentment")
    payload["line_items"][0]["price"] = "50.00"
    payload["total_price"] = "104.00"

    # When it is normalised
    order = paid(payload)

    # Then the _set shop money is used
    assert order.lines[0].unit_price == Decimal("54.00")
    assert order.total == Decimal("112.32")


def test_plain_fields_are_the_fallback_when_set_twins_are_missing() -> None:
    # Given an order without any *_set fields (an older or hand-made payload)
    payload = load("orders_paid")
    for line in payload["line_items"]:
        del line["price_set"]
        for allocation in line["discount_allocations"]:
            del allocation["amount_set"]
    del payload["total_price_set"]

    # When it is normalised
    order = paid(payload)

    # Then the plain strings give the same numbers
    assert order.merchandise == Decimal("72.00")
    assert order.total == Decimal("105.90")
    assert order.currency == "USD"


# --- discounts without allocations --------------------------------------------------------


def test_order_discount_is_spread_proportionally_without_allocations() -> None:
    # Given the worked example with no discount_allocations but total_discounts 8.00
    payload = load("orders_paid")
    for line in payload["line_items"]:
        del line["discount_allocations"]

    # When it is normalised
    order = paid(payload)

    # Then 8.00 is split over the non-gift lines by price x quantity (50 : 30):
    # A 8.00 x 50/80 = 5.00, B 8.00 x 30/80 = 3.00, the gift card nothing.
    assert [line.discount for line in order.lines] == [
        Decimal("5.00"),
        Decimal("3.00"),
        Decimal("0"),
    ]
    assert order.merchandise == Decimal("72.00")


def test_spread_discount_shares_add_up_to_the_order_discount() -> None:
    # Given three equal lines of 10.00 and an order discount of 10.00, no allocations
    payload = load("orders_paid")
    template = payload["line_items"][1]
    payload["line_items"] = []
    for index in range(3):
        line = copy.deepcopy(template)
        line["id"] = 20000 + index
        line["price"], line["price_set"]["shop_money"]["amount"] = "10.00", "10.00"
        del line["discount_allocations"]
        payload["line_items"].append(line)
    payload["total_discounts_set"]["shop_money"]["amount"] = "10.00"

    # When it is normalised
    order = paid(payload)

    # Then the shares are 3.33, 3.33 and 3.34: exact to the cent, summing to 10.00
    assert [line.discount for line in order.lines] == [
        Decimal("3.33"),
        Decimal("3.33"),
        Decimal("3.34"),
    ]
    assert order.merchandise == Decimal("20.00")


def test_merchandise_is_never_negative() -> None:
    # Given a line whose allocations exceed its price (a malformed but verified payload)
    payload = load("orders_paid")
    payload["line_items"][1]["discount_allocations"][0]["amount_set"]["shop_money"]["amount"] = (
        "99.00"
    )

    # When it is normalised
    order = paid(payload)

    # Then that line counts as 0, not -69.00: 45.00 + 0
    assert order.lines[1].merchandise == Decimal(0)
    assert order.merchandise == Decimal("45.00")


# --- guests, POS, customers ---------------------------------------------------------------


def test_guest_order_takes_the_order_email() -> None:
    # Given a guest checkout: customer is null, the email has stray case and spaces
    # When it is normalised
    order = paid(load("orders_paid_guest"))

    # Then there is no customer and the normalised order email identifies the shopper
    assert order.customer is None
    assert order.email == "guest.buyer@example.com"
    assert order.merchandise == Decimal("40.00")
    assert order.placed_at == datetime(2026, 9, 16, 7, 45, tzinfo=UTC)


def test_guest_order_falls_back_to_contact_email() -> None:
    # Given a guest order with only contact_email
    payload = load("orders_paid_guest")
    payload["email"] = None
    payload["contact_email"] = "Someone@Example.org"

    # When it is normalised
    # Then contact_email is used
    assert paid(payload).email == "someone@example.org"


def test_pos_order_keeps_its_channel_and_a_customer_without_email() -> None:
    # Given an in-store POS order for a walk-in customer with a phone but no email
    # When it is normalised
    order = paid(load("orders_paid_pos"))

    # Then the channel is kept for the program's channel rules, and the customer is no account
    assert order.source_name == "pos"
    assert order.email is None
    assert order.customer == CustomerInfo("7003", None, "Sam", "Okafor", "+12075550199", False)
    assert order.merchandise == Decimal("18.50")
    assert order.total == Decimal("19.98")


def test_customer_create_for_an_account() -> None:
    # Given customers/create for an activated account
    # When it is normalised
    event = customer_event("customers/create", load("customers_create"))

    # Then it is an account, with its email normalised
    assert event == CustomerCreated(
        customer=CustomerInfo(
            "7001", "ada.lovelace@example.com", "Ada", "Lovelace", "+12075550142", True
        ),
        state="enabled",
    )


def test_customer_create_for_a_guest_checkout() -> None:
    # Given customers/create for the record a guest checkout leaves (state disabled)
    # When it is normalised
    event = customer_event("customers/create", load("customers_create_guest"))

    # Then it is not an account
    assert event == CustomerCreated(
        customer=CustomerInfo("7004", "guest.buyer@example.com", None, None, None, False),
        state="disabled",
    )


def test_customer_update_when_a_guest_activates_an_account() -> None:
    # Given customers/update for the guest, now enabled
    payload = load("customers_create_guest")
    payload["state"] = "enabled"

    # When it is normalised
    event = customer_event("customers/update", payload)

    # Then it is a CustomerUpdated that marks an account
    assert isinstance(event, CustomerUpdated)
    assert event.customer.is_account is True


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("enabled", True),
        ("ENABLED ", True),
        ("disabled", False),
        ("invited", False),
        ("declined", False),
        (None, False),
    ],
)
def test_only_enabled_is_an_account(state: str | None, expected: bool) -> None:
    assert is_account_state(state) is expected


# --- cancellations ------------------------------------------------------------------------


def test_cancelled_topic_gives_order_cancelled() -> None:
    # Given orders/cancelled for the worked example
    payload = load("orders_paid")
    payload["cancelled_at"] = "2026-09-15T08:00:00-04:00"
    payload["cancel_reason"] = "customer"

    # When it is normalised
    event = order_event("orders/cancelled", payload)

    # Then it is an OrderCancelled at that instant, in UTC
    assert event == OrderCancelled(
        order_id="5912345678901",
        cancelled_at=datetime(2026, 9, 15, 12, 0, tzinfo=UTC),
        reason="customer",
    )


def test_cancelled_order_on_another_topic_is_flagged() -> None:
    # Given orders/updated for an order that has been cancelled
    payload = load("orders_paid")
    payload["cancelled_at"] = "2026-09-15T08:00:00-04:00"

    # When it is normalised
    # Then the OrderPaid says so, so it cannot earn
    assert paid(payload).cancelled is True


# --- refunds ------------------------------------------------------------------------------


def test_amount_only_refund_counts_the_discrepancy() -> None:
    # Given a goodwill refund of 10.00 with no line items: refund_line_items is empty, the
    # money is in transactions and a refund_discrepancy adjustment of -10.00
    # When it is normalised
    refund = refund_event(load("refunds_create_amount_only"))

    # Then 10.00 of merchandise was refunded
    assert refund.merchandise_refunded == Decimal("10.00")
    assert refund.refund_id == "990002"
    assert refund.order_id == "5912345678901"
    assert refund.created_at == datetime(2026, 9, 22, 13, 0, tzinfo=UTC)
    # and on the 72-point order it reverses round_half_up(72 x 10 / 72) = 10
    assert reversal_for_refund(72, Decimal("72.00"), Decimal(0), Decimal("10.00"), 0) == 10


def test_amount_only_refund_in_presentment_currency_uses_the_adjustment_shop_money() -> None:
    # Given a USD shop refunding 10.00 EUR: the transaction says EUR, the adjustment has
    # both monies (-10.80 USD / -10.00 EUR)
    payload = load("refunds_create_amount_only")
    payload["transactions"][0]["currency"] = "EUR"
    adjustment = payload["order_adjustments"][0]
    adjustment["amount"] = "-10.80"
    adjustment["amount_set"]["shop_money"]["amount"] = "-10.80"
    adjustment["amount_set"]["presentment_money"] = {"amount": "-10.00", "currency_code": "EUR"}

    # When it is normalised
    refund = refund_event(payload, shop_currency="USD")

    # Then the shop-money 10.80 USD counts
    assert refund.merchandise_refunded == Decimal("10.80")


def test_refund_with_extra_money_adds_the_discrepancy_to_the_lines() -> None:
    # Given line B refunded (27.00 + 2.16 tax) but 35.00 paid back: discrepancy -5.84
    payload = load("refunds_create")
    payload["transactions"][0]["amount"] = "35.00"
    payload["order_adjustments"] = [
        {
            "kind": "refund_discrepancy",
            "amount": "-5.84",
            "tax_amount": "0.00",
            "amount_set": {"shop_money": {"amount": "-5.84", "currency_code": "USD"}},
        }
    ]

    # When it is normalised
    # Then 27.00 + 5.84 = 32.84 of merchandise came back
    assert refund_event(payload).merchandise_refunded == Decimal("32.84")


def test_withheld_money_does_not_shrink_a_line_refund() -> None:
    # Given line B returned with a 5.00 restocking fee withheld (discrepancy +5.00)
    payload = load("refunds_create")
    payload["order_adjustments"] = [
        {
            "kind": "refund_discrepancy",
            "amount": "5.00",
            "tax_amount": "0.00",
            "amount_set": {"shop_money": {"amount": "5.00", "currency_code": "USD"}},
        }
    ]

    # When it is normalised
    # Then the goods came back, so all 27.00 counts
    assert refund_event(payload).merchandise_refunded == Decimal("27.00")


def test_shipping_only_refund_returns_no_merchandise() -> None:
    # Given a refund of the 7.50 shipping (plus 0.64 tax) only, without a discrepancy
    payload = load("refunds_create_amount_only")
    payload["order_adjustments"] = []
    payload["transactions"][0]["amount"] = "8.14"
    payload["refund_shipping_lines"] = [
        {
            "id": 1,
            "shipping_line_id": 4410001,
            "subtotal_amount_set": {"shop_money": {"amount": "7.50", "currency_code": "USD"}},
            "tax_amount_set": {"shop_money": {"amount": "0.64", "currency_code": "USD"}},
        }
    ]

    # When it is normalised
    # Then 8.14 - 7.50 - 0.64 = 0 merchandise was refunded
    assert refund_event(payload).merchandise_refunded == Decimal("0.00")


def test_transactions_without_adjustment_count_minus_shipping() -> None:
    # Given an amount-only refund of 20.00 where 7.50 of it was shipping, no discrepancy
    payload = load("refunds_create_amount_only")
    payload["order_adjustments"] = []
    payload["transactions"][0]["amount"] = "20.00"
    payload["transactions"].append(
        {"kind": "refund", "status": "failure", "amount": "20.00", "currency": "USD"}
    )
    payload["refund_shipping_lines"] = [
        {"subtotal_amount_set": {"shop_money": {"amount": "7.50", "currency_code": "USD"}}}
    ]

    # When it is normalised
    # Then the successful 20.00 minus 7.50 shipping = 12.50 (the failed one is ignored)
    assert refund_event(payload).merchandise_refunded == Decimal("12.50")


def test_foreign_transaction_is_converted_only_with_a_rate() -> None:
    # Given a 10.00 EUR refund transaction in a USD shop, with no adjustment to read
    payload = load("refunds_create_amount_only")
    payload["order_adjustments"] = []
    payload["transactions"][0]["currency"] = "EUR"

    # When no rate is given, Then it is refused (a dead letter, not a guess)
    with pytest.raises(PayloadError, match="EUR"):
        refund_event(payload, shop_currency="USD")

    # When the order's rate (1.08 USD per EUR) is given, Then 10.00 EUR = 10.80 USD
    converted = refund_event(payload, shop_currency="USD", shop_per_presentment=Decimal("1.08"))
    assert converted.merchandise_refunded == Decimal("10.8000")


def test_transaction_shop_money_is_used_when_present() -> None:
    # Given a transaction that carries amount_set with both monies
    payload = load("refunds_create_amount_only")
    payload["order_adjustments"] = []
    payload["transactions"][0]["currency"] = "EUR"
    payload["transactions"][0]["amount_set"] = {
        "shop_money": {"amount": "10.80", "currency_code": "USD"},
        "presentment_money": {"amount": "10.00", "currency_code": "EUR"},
    }

    # When it is normalised, Then its shop money counts
    assert refund_event(payload, shop_currency="USD").merchandise_refunded == Decimal("10.80")


def test_gift_card_refund_lines_are_not_merchandise() -> None:
    # Given a refund of the gift-card line C
    payload = load("refunds_create")
    line = payload["refund_line_items"][0]
    line["line_item"] = load("orders_paid")["line_items"][2]
    line["subtotal_set"]["shop_money"]["amount"] = "20.00"

    # When it is normalised
    # Then nothing of the merchandise came back
    assert refund_event(payload).merchandise_refunded == Decimal(0)


# --- malformed payloads -------------------------------------------------------------------


def test_order_without_id_is_a_payload_error() -> None:
    payload = load("orders_paid")
    del payload["id"]
    with pytest.raises(PayloadError, match=r"order\.id"):
        order_event("orders/paid", payload)


def test_non_numeric_amount_is_a_payload_error() -> None:
    payload = load("orders_paid")
    payload["line_items"][0]["price_set"]["shop_money"]["amount"] = "twenty-five"
    with pytest.raises(PayloadError, match=r"line_items\[0\]\.price_set"):
        order_event("orders/paid", payload)


@pytest.mark.parametrize("amount", ["NaN", "Infinity", True, None, [], "1e999999999", "1e-20"])
def test_impossible_amounts_are_payload_errors(amount: object) -> None:
    payload = load("orders_paid")
    payload["total_price_set"]["shop_money"]["amount"] = amount
    with pytest.raises(PayloadError):
        order_event("orders/paid", payload)


def test_fractional_quantity_is_a_payload_error() -> None:
    payload = load("orders_paid")
    payload["line_items"][0]["quantity"] = 1.5
    with pytest.raises(PayloadError, match="quantity"):
        order_event("orders/paid", payload)


def test_bad_timestamp_is_a_payload_error() -> None:
    payload = load("orders_paid")
    payload["processed_at"] = "yesterday"
    with pytest.raises(PayloadError, match="processed_at"):
        order_event("orders/paid", payload)


def test_refund_without_order_id_is_a_payload_error() -> None:
    payload = load("refunds_create")
    del payload["order_id"]
    with pytest.raises(PayloadError, match="order_id"):
        refund_event(payload)


def test_customer_without_id_is_a_payload_error() -> None:
    payload = load("customers_create")
    payload["id"] = None
    with pytest.raises(PayloadError, match=r"customer\.id"):
        customer_event("customers/create", payload)


def test_payload_that_is_not_an_object_is_a_payload_error() -> None:
    with pytest.raises(PayloadError):
        order_event("orders/paid", [])  # type: ignore[arg-type]


def test_unknown_topics_are_refused() -> None:
    with pytest.raises(PayloadError):
        order_event("orders/edited", load("orders_paid"))
    with pytest.raises(PayloadError):
        customer_event("customers/delete", load("customers_create"))


def test_payload_error_is_a_value_error() -> None:
    assert issubclass(PayloadError, ValueError)
