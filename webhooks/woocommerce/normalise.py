"""Turn WooCommerce REST v3 order and customer JSON into domain events.

Pure functions: no I/O, no database. WooCommerce builds a webhook payload when it sends it
and coalesces quick updates, so the topic says little: what an order means is read from
its state alone (`status`, `date_paid_gmt`, `refunds`). The same function serves webhook
deliveries and the polling reconcile, which reads the same JSON from `GET /orders`.

Money rules: amounts are decimal strings in the order currency (WooCommerce has one store
currency). Merchandise = sum of `line_items[].total` (after discounts, before tax; shipping
and fees are other lines). `refunds[].total` is negative; a refund's merchandise amount is
taken as its absolute value, capped by the engine at the order's merchandise (the order
payload does not say which part of a refund was shipping or tax).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from app.events import (
    CustomerCreated,
    CustomerInfo,
    OrderCancelled,
    OrderLine,
    OrderPaid,
    OrderRefunded,
)
from webhooks.shopify.normalise import (
    PayloadError,
    _datetime,
    _decimal,
    _id,
    _list,
    _mapping,
    _optional_id,
    _text,
    normalise_email,
)

_ZERO = Decimal("0")

PAID_STATUSES = frozenset({"processing", "completed"})
CANCELLED_STATUSES = frozenset({"cancelled"})


class OrderState(StrEnum):
    """What an order's status means to Stamp."""

    open = "open"  # pending, on-hold, failed, drafts, custom statuses: not earning yet
    processing = "processing"  # paid, not yet shipped
    completed = "completed"  # paid and fulfilled
    cancelled = "cancelled"
    refunded = "refunded"


@dataclass(frozen=True, slots=True)
class WooOrder:
    """One order as Stamp applies it: the order itself, its refunds and what its status means."""

    order: OrderPaid
    state: OrderState
    refunds: tuple[OrderRefunded, ...]
    cancellation: OrderCancelled | None


def order_state(status: str | None) -> OrderState:
    if status == "processing":
        return OrderState.processing
    if status == "completed":
        return OrderState.completed
    if status in CANCELLED_STATUSES:
        return OrderState.cancelled
    if status == "refunded":
        return OrderState.refunded
    return OrderState.open


def _gmt(order: Mapping[str, Any], field: str) -> Any:
    """`<field>_gmt` (UTC without an offset), else the store-local `<field>`."""
    return order.get(f"{field}_gmt") or order.get(field)


def customer_info(order: Mapping[str, Any]) -> CustomerInfo | None:
    """A registered customer (`customer_id` > 0), or None for a guest (matched by email)."""
    raw = order.get("customer_id")
    if isinstance(raw, bool) or not isinstance(raw, int | str) or str(raw).strip() in {"", "0"}:
        return None
    billing = _mapping(order.get("billing") or {}, "order.billing")
    return CustomerInfo(
        customer_id=str(raw).strip(),
        email=normalise_email(billing.get("email")),
        first_name=_text(billing, "first_name"),
        last_name=_text(billing, "last_name"),
        phone=_text(billing, "phone"),
        is_account=True,
    )


def _lines(order: Mapping[str, Any]) -> tuple[OrderLine, ...]:
    lines: list[OrderLine] = []
    for index, raw in enumerate(_list(order.get("line_items"), "order.line_items")):
        path = f"order.line_items[{index}]"
        line = _mapping(raw, path)
        quantity = line.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
            raise PayloadError(f"{path}.quantity: {quantity!r} is not a whole quantity")
        subtotal = _decimal(line.get("subtotal", line.get("total")), f"{path}.subtotal")
        total = _decimal(line.get("total"), f"{path}.total")
        variation = line.get("variation_id")
        lines.append(
            OrderLine(
                line_id=_id(line, "id", path),
                product_id=_optional_id(line, "product_id", path),
                variant_id=str(variation) if isinstance(variation, int) and variation else None,
                quantity=quantity,
                unit_price=subtotal / quantity if quantity else subtotal,
                discount=max(subtotal - total, _ZERO),
                gift_card=False,
                merchandise=max(total, _ZERO),
            )
        )
    return tuple(lines)


def _coupon_codes(order: Mapping[str, Any]) -> tuple[str, ...]:
    """WooCommerce lower-cases coupon codes; Stamp's are upper-case, so compare that way."""
    codes: list[str] = []
    for index, raw in enumerate(_list(order.get("coupon_lines"), "order.coupon_lines")):
        code = _text(_mapping(raw, f"order.coupon_lines[{index}]"), "code")
        if code:
            codes.append(code.upper())
    return tuple(codes)


def _refunds(
    order: Mapping[str, Any], order_id: str, at: Any, currency: str
) -> list[OrderRefunded]:
    refunds: list[OrderRefunded] = []
    for index, raw in enumerate(_list(order.get("refunds"), "order.refunds")):
        path = f"order.refunds[{index}]"
        refund = _mapping(raw, path)
        amount = _decimal(refund.get("total"), f"{path}.total")
        refunds.append(
            OrderRefunded(
                order_id=order_id,
                refund_id=_id(refund, "id", path),
                merchandise_refunded=abs(amount),
                created_at=at,
                currency=currency,
            )
        )
    return refunds


def order_from_payload(payload: Any) -> WooOrder:
    """A full order object (`order.created`, `.updated`, `.restored`, or `GET /orders`)."""
    order = _mapping(payload, "order")
    order_id = _id(order, "id", "order")
    status = _text(order, "status")
    state = order_state(status)
    currency = (_text(order, "currency") or "").upper()
    if len(currency) != 3 or not currency.isalpha():
        raise PayloadError(f"order.currency: {currency!r} is not a currency code")
    placed_at = _datetime(_gmt(order, "date_created"), "order.date_created_gmt")
    modified_raw = _gmt(order, "date_modified")
    modified_at = _datetime(modified_raw, "order.date_modified_gmt") if modified_raw else placed_at
    billing = _mapping(order.get("billing") or {}, "order.billing")
    customer = customer_info(order)
    lines = _lines(order)
    merchandise = sum((line.merchandise for line in lines), _ZERO)
    event = OrderPaid(
        order_id=order_id,
        name=f"#{_text(order, 'number') or order_id}",
        customer=customer,
        email=normalise_email(billing.get("email")),
        currency=currency,
        merchandise=merchandise,
        total=_decimal(order.get("total"), "order.total"),
        lines=lines,
        discount_codes=_coupon_codes(order),
        is_test=False,
        source_name=_text(order, "created_via"),
        financial_status="paid" if _gmt(order, "date_paid") else None,
        placed_at=placed_at,
        landing_site=None,
        referring_site=None,
        note_attributes=(),
        tags=(),
        cancelled=state is OrderState.cancelled,
    )
    refunds = _refunds(order, order_id, modified_at, currency)
    if state is OrderState.refunded:
        # A full refund reverses everything, whatever the refund lines say about shipping.
        refunds.append(
            OrderRefunded(
                order_id=order_id,
                refund_id=f"{order_id}:status-refunded",
                merchandise_refunded=merchandise,
                created_at=modified_at,
                currency=currency,
            )
        )
    cancellation = (
        OrderCancelled(order_id=order_id, cancelled_at=modified_at, reason=status)
        if state is OrderState.cancelled
        else None
    )
    return WooOrder(event, state, tuple(refunds), cancellation)


def customer_from_payload(payload: Any) -> CustomerCreated:
    """`customer.created`: a WordPress user with a store account."""
    customer = _mapping(payload, "customer")
    billing = _mapping(customer.get("billing") or {}, "customer.billing")
    return CustomerCreated(
        customer=CustomerInfo(
            customer_id=_id(customer, "id", "customer"),
            email=normalise_email(customer.get("email")) or normalise_email(billing.get("email")),
            first_name=_text(customer, "first_name") or _text(billing, "first_name"),
            last_name=_text(customer, "last_name") or _text(billing, "last_name"),
            phone=_text(billing, "phone"),
            is_account=True,
        ),
        state=_text(customer, "role"),
    )
