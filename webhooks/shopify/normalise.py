"""Turn parsed Shopify webhook payloads (API 2026-07 shapes) into domain events.

Pure functions: no I/O, no database. Anything required that is missing or malformed raises
`PayloadError`, which the webhook pipeline keeps as a replayable dead letter.

Money rules:
- Amounts always come from `<field>_set.shop_money.amount`, the shop's currency, even when
  the shopper paid in another presentment currency. The plain `<field>` string is read only
  when the `_set` twin is absent (older payloads, hand-made test payloads).
- Order merchandise = sum over non-gift-card lines of `price * quantity - line discounts`,
  where line discounts are the line's `discount_allocations` (they include order-level
  discount codes Shopify allocated to the line). Quantities are the ordered `quantity`;
  later order edits reach Stamp as refunds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from app.events import (
    CustomerCreated,
    CustomerInfo,
    CustomerUpdated,
    OrderCancelled,
    OrderLine,
    OrderPaid,
    OrderRefunded,
)

ORDER_TOPICS = frozenset(
    {"orders/paid", "orders/create", "orders/updated", "orders/fulfilled", "orders/cancelled"}
)
CUSTOMER_TOPICS = frozenset({"customers/create", "customers/update"})

# Shopify customer `state`: only "enabled" is a working store account. "disabled" is what a
# guest checkout creates (and an account the merchant switched off), "invited" has not been
# accepted yet and "declined" was refused.
ACCOUNT_STATES = frozenset({"enabled"})

_ZERO = Decimal("0")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
# Money columns are NUMERIC(20, 6); anything beyond these bounds is not a real amount and
# would only make exact arithmetic slow.
_MAX_DIGITS = 14  # whole-number digits
_MAX_PLACES = 6


class PayloadError(ValueError):
    """A verified payload Stamp cannot understand; the caller turns it into a dead letter."""


# --- primitives ---------------------------------------------------------------------------


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PayloadError(f"{path}: expected an object, got {type(value).__name__}")
    return value


def _list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadError(f"{path}: expected a list, got {type(value).__name__}")
    return value


def _id(payload: Mapping[str, Any], key: str, path: str) -> str:
    """A required platform id (int64 in JSON, or a numeric/gid string) as text."""
    value = payload.get(key)
    if value is None or isinstance(value, bool):
        raise PayloadError(f"{path}.{key}: required id is missing")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise PayloadError(f"{path}.{key}: {value!r} is not a valid id")


def _optional_id(payload: Mapping[str, Any], key: str, path: str) -> str | None:
    if payload.get(key) is None:
        return None
    return _id(payload, key, path)


def _text(payload: Mapping[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _decimal(value: Any, path: str) -> Decimal:
    """A money amount: a decimal string (Shopify's format) or a JSON number."""
    if isinstance(value, bool) or value is None:
        raise PayloadError(f"{path}: {value!r} is not a decimal amount")
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        raise PayloadError(f"{path}: {value!r} is not a decimal amount")
    try:
        amount = Decimal(value.strip())
    except InvalidOperation:
        raise PayloadError(f"{path}: {value!r} is not a decimal amount") from None
    if not amount.is_finite():
        raise PayloadError(f"{path}: {value!r} is not a finite amount")
    exponent = amount.as_tuple().exponent
    if amount.adjusted() >= _MAX_DIGITS or (isinstance(exponent, int) and exponent < -_MAX_PLACES):
        raise PayloadError(f"{path}: {value!r} is outside the range of a money amount")
    return amount


def _shop_money(payload: Mapping[str, Any], field: str, path: str) -> Decimal | None:
    """`<field>_set.shop_money.amount`, else the plain `<field>`, else None."""
    money_set = payload.get(f"{field}_set")
    if money_set is not None:
        shop_money = _mapping(
            _mapping(money_set, f"{path}.{field}_set").get("shop_money"),
            f"{path}.{field}_set.shop_money",
        )
        return _decimal(shop_money.get("amount"), f"{path}.{field}_set.shop_money.amount")
    if payload.get(field) is None:
        return None
    return _decimal(payload[field], f"{path}.{field}")


def _required_money(payload: Mapping[str, Any], field: str, path: str) -> Decimal:
    amount = _shop_money(payload, field, path)
    if amount is None:
        raise PayloadError(f"{path}.{field}: required amount is missing")
    return amount


def _shop_currency_code(payload: Mapping[str, Any], field: str) -> str | None:
    money_set = payload.get(f"{field}_set")
    if isinstance(money_set, Mapping):
        shop_money = money_set.get("shop_money")
        if isinstance(shop_money, Mapping):
            code = shop_money.get("currency_code")
            if isinstance(code, str) and _CURRENCY.match(code.upper()):
                return code.upper()
    return None


def _datetime(value: Any, path: str) -> datetime:
    """ISO-8601 to aware UTC. A value without an offset is taken as UTC."""
    if not isinstance(value, str) or not value.strip():
        raise PayloadError(f"{path}: {value!r} is not a timestamp")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise PayloadError(f"{path}: {value!r} is not an ISO-8601 timestamp") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _first_datetime(payload: Mapping[str, Any], keys: Iterable[str], path: str) -> datetime:
    names = list(keys)
    for key in names:
        if payload.get(key) is not None:
            return _datetime(payload[key], f"{path}.{key}")
    raise PayloadError(f"{path}: none of {', '.join(names)} is present")


def normalise_email(value: Any) -> str | None:
    """Stripped and lower-cased, so one shopper is one member whatever they typed."""
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    return email or None


# --- customers ----------------------------------------------------------------------------


def is_account_state(state: str | None) -> bool:
    """Whether a Shopify customer `state` means a real store account.

    "enabled" is an activated account. "disabled" is what a guest checkout creates (or an
    account the merchant deactivated), "invited" has not been accepted and "declined" was
    refused: none of them is an account. A missing state counts as not an account; the
    `customers/update` that follows an activation corrects it.
    """
    return state is not None and state.strip().lower() in ACCOUNT_STATES


def _customer_info(
    customer: Mapping[str, Any], path: str, fallback_email: Any = None
) -> CustomerInfo:
    state = _text(customer, "state")
    return CustomerInfo(
        customer_id=_id(customer, "id", path),
        email=normalise_email(customer.get("email")) or normalise_email(fallback_email),
        first_name=_text(customer, "first_name"),
        last_name=_text(customer, "last_name"),
        phone=_text(customer, "phone"),
        is_account=is_account_state(state),
    )


def customer_event(topic: str, payload: Mapping[str, Any]) -> CustomerCreated | CustomerUpdated:
    """`customers/create` → CustomerCreated, `customers/update` → CustomerUpdated."""
    if topic not in CUSTOMER_TOPICS:
        raise PayloadError(f"{topic!r} is not a customer topic")
    customer = _customer_info(_mapping(payload, "customer"), "customer")
    state = _text(payload, "state")
    if topic == "customers/create":
        return CustomerCreated(customer=customer, state=state)
    return CustomerUpdated(customer=customer, state=state)


# --- orders -------------------------------------------------------------------------------


def _spread(total: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """Split `total` across `weights` proportionally; the shares add up to `total` exactly.

    Shares are rounded to cents (or finer, if `total` was given finer); the last weighted
    share takes the rounding remainder.
    """
    weight_sum = sum(weights, _ZERO)
    if weight_sum <= 0 or total == 0:
        return [_ZERO for _ in weights]
    exponent = total.as_tuple().exponent
    quantum = Decimal(1).scaleb(min(exponent, -2) if isinstance(exponent, int) else -2)
    shares = [(total * weight / weight_sum).quantize(quantum) for weight in weights]
    last = max(index for index, weight in enumerate(weights) if weight > 0)
    shares[last] += total - sum(shares, _ZERO)
    return shares


class _RawLine(NamedTuple):
    line_id: str
    product_id: str | None
    variant_id: str | None
    quantity: int
    unit_price: Decimal
    allocated: Decimal | None
    gift_card: bool


def _raw_line(raw: Any, path: str) -> _RawLine:
    line = _mapping(raw, path)
    quantity = line.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
        raise PayloadError(f"{path}.quantity: {quantity!r} is not a whole quantity")
    allocated: Decimal | None = None
    if "discount_allocations" in line:
        allocated = _ZERO
        entries = _list(line.get("discount_allocations"), f"{path}.discount_allocations")
        for position, entry in enumerate(entries):
            entry_path = f"{path}.discount_allocations[{position}]"
            allocated += _required_money(_mapping(entry, entry_path), "amount", entry_path)
    return _RawLine(
        line_id=_id(line, "id", path),
        product_id=_optional_id(line, "product_id", path),
        variant_id=_optional_id(line, "variant_id", path),
        quantity=quantity,
        unit_price=_required_money(line, "price", path),
        allocated=allocated,
        gift_card=line.get("gift_card") is True,
    )


def _order_lines(payload: Mapping[str, Any]) -> tuple[OrderLine, ...]:
    """Lines in shop money, each carrying its share of every discount.

    Normally each line's `discount_allocations` hold its discounts (line-level and the
    order-level codes Shopify allocated to it). If no line carries `discount_allocations`
    at all but the order has `total_discounts`, that order discount is spread across the
    non-gift-card lines in proportion to their `price * quantity` (gift cards cannot be
    discounted on Shopify), so the order's merchandise is still after discounts.
    """
    raw_lines = [
        _raw_line(raw, f"order.line_items[{index}]")
        for index, raw in enumerate(_list(payload.get("line_items"), "order.line_items"))
    ]
    if any(line.allocated is not None for line in raw_lines):
        discounts = [line.allocated or _ZERO for line in raw_lines]
    else:
        order_discount = _shop_money(payload, "total_discounts", "order") or _ZERO
        weights = [
            _ZERO if line.gift_card else line.unit_price * line.quantity for line in raw_lines
        ]
        discounts = _spread(order_discount, weights)
    return tuple(
        OrderLine(
            line_id=line.line_id,
            product_id=line.product_id,
            variant_id=line.variant_id,
            quantity=line.quantity,
            unit_price=line.unit_price,
            discount=discount,
            gift_card=line.gift_card,
            merchandise=max(line.unit_price * line.quantity - discount, _ZERO),
        )
        for line, discount in zip(raw_lines, discounts, strict=True)
    )


def _note_attributes(payload: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for index, raw in enumerate(_list(payload.get("note_attributes"), "order.note_attributes")):
        attribute = _mapping(raw, f"order.note_attributes[{index}]")
        name = attribute.get("name")
        if name is None:
            continue
        value = attribute.get("value")
        pairs.append((str(name), "" if value is None else str(value)))
    return tuple(pairs)


def _tags(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        items = [str(item) for item in value]
    elif isinstance(value, str):
        items = value.split(",")
    else:
        items = []
    return tuple(tag.strip() for tag in items if tag.strip())


def _discount_codes(payload: Mapping[str, Any]) -> tuple[str, ...]:
    codes = []
    for index, raw in enumerate(_list(payload.get("discount_codes"), "order.discount_codes")):
        code = _text(_mapping(raw, f"order.discount_codes[{index}]"), "code")
        if code:
            codes.append(code)
    return tuple(codes)


def _order_currency(payload: Mapping[str, Any]) -> str:
    code = _shop_currency_code(payload, "total_price") or _text(payload, "currency")
    if code is None or not _CURRENCY.match(code.upper()):
        raise PayloadError(f"order.currency: {code!r} is not a shop currency code")
    return code.upper()


def order_event(topic: str, payload: Mapping[str, Any]) -> OrderPaid | OrderCancelled:
    """Order topics → OrderPaid; `orders/cancelled` → OrderCancelled.

    Guest checkout: `customer` is null, so `customer` is None and `email` comes from the
    order's `email` or `contact_email`. With a customer, a redacted customer email (no
    protected-data access) falls back to the order email too.
    """
    if topic not in ORDER_TOPICS:
        raise PayloadError(f"{topic!r} is not an order topic")
    order = _mapping(payload, "order")
    order_id = _id(order, "id", "order")
    if topic == "orders/cancelled":
        return OrderCancelled(
            order_id=order_id,
            cancelled_at=_first_datetime(order, ("cancelled_at", "updated_at"), "order"),
            reason=_text(order, "cancel_reason"),
        )

    order_email = normalise_email(order.get("email")) or normalise_email(order.get("contact_email"))
    customer: CustomerInfo | None = None
    if order.get("customer") is not None:
        customer = _customer_info(
            _mapping(order["customer"], "order.customer"), "order.customer", order_email
        )
        if customer.phone is None:
            customer = replace(customer, phone=_text(order, "phone"))

    lines = _order_lines(order)
    merchandise = sum((line.merchandise for line in lines if not line.gift_card), _ZERO)
    return OrderPaid(
        order_id=order_id,
        name=_text(order, "name"),
        customer=customer,
        email=order_email or (customer.email if customer else None),
        currency=_order_currency(order),
        merchandise=max(merchandise, _ZERO),
        total=_required_money(order, "total_price", "order"),
        lines=lines,
        discount_codes=_discount_codes(order),
        is_test=order.get("test") is True,
        source_name=_text(order, "source_name"),
        financial_status=_text(order, "financial_status"),
        placed_at=_first_datetime(order, ("processed_at", "created_at"), "order"),
        landing_site=_text(order, "landing_site"),
        referring_site=_text(order, "referring_site"),
        note_attributes=_note_attributes(order),
        tags=_tags(order.get("tags")),
        cancelled=order.get("cancelled_at") is not None,
    )


# --- refunds ------------------------------------------------------------------------------


def _refund_shop_currency(refund: Mapping[str, Any]) -> str | None:
    """The shop currency as the refund payload itself states it, if anywhere."""
    candidates: list[Mapping[str, Any]] = []
    for key in ("refund_line_items", "order_adjustments", "refund_shipping_lines"):
        candidates.extend(
            item for item in _list(refund.get(key), f"refund.{key}") if isinstance(item, Mapping)
        )
    for item in candidates:
        for field in ("subtotal", "amount", "subtotal_amount", "total_tax", "tax_amount"):
            code = _shop_currency_code(item, field)
            if code:
                return code
    return None


def _is_discrepancy(adjustment: Mapping[str, Any]) -> bool:
    """Any adjustment except the legacy `shipping_refund` kind (`kind` is deprecated)."""
    return _text(adjustment, "kind") != "shipping_refund"


def _transaction_amount(
    transaction: Mapping[str, Any],
    path: str,
    shop_currency: str | None,
    shop_per_presentment: Decimal | None,
) -> Decimal:
    """A refund transaction in shop money.

    Transactions are in the presentment currency. `amount_set.shop_money` is used when the
    payload has it; otherwise the plain `amount` is taken as shop money when its `currency`
    is the shop's (or either is unknown, as in a single-currency shop), converted with the
    caller's `shop_per_presentment` rate when one is given, and refused otherwise: a wrong
    guess would reverse the wrong number of points, a dead letter is visible and replayable.
    """
    if transaction.get("amount_set") is not None:
        return _required_money(transaction, "amount", path)
    amount = _decimal(transaction.get("amount"), f"{path}.amount")
    currency = _text(transaction, "currency")
    if currency is None or shop_currency is None or currency.upper() == shop_currency:
        return amount
    if shop_per_presentment is not None:
        return amount * shop_per_presentment
    raise PayloadError(
        f"{path}: refund transaction is in {currency}, the shop currency is {shop_currency} "
        "and no conversion rate was given"
    )


def refund_event(
    payload: Mapping[str, Any],
    *,
    shop_currency: str | None = None,
    shop_per_presentment: Decimal | None = None,
) -> OrderRefunded:
    """`refunds/create` → OrderRefunded, with the merchandise it gave back in shop money.

    merchandise_refunded = max(0, L + A), where
    - L = sum of `refund_line_items[].subtotal_set.shop_money.amount` (after line discounts,
      before tax), leaving out gift-card lines (they were never merchandise);
    - A = the amount-only part. A refund of an arbitrary amount arrives with
      `refund_line_items: []`, the money in `transactions` and a `refund_discrepancy`
      order adjustment whose `amount` is calculated refund minus actual refund, so negative
      when more money went back than the lines, shipping and tax account for. Then
      A = max(0, -sum of discrepancy amounts) in shop money (the adjustment's `tax_amount`
      is reported separately from `amount`, so no tax is in it). A positive discrepancy
      (money withheld, e.g. a restocking fee) is ignored: the goods came back, so their
      points go.
      Without any discrepancy adjustment and without refund lines (a shipping-only refund,
      or an older payload), A = successful `refund` transactions minus refunded shipping
      (`refund_shipping_lines` subtotal and tax, legacy `shipping_refund` adjustments) and
      minus refunded duties, clamped at 0. Tax on such an amount cannot be identified and
      stays in A.
    """
    refund = _mapping(payload, "refund")
    refund_id = _id(refund, "id", "refund")
    order_id = _id(refund, "order_id", "refund")
    created_at = _first_datetime(refund, ("created_at", "processed_at"), "refund")
    currency = (shop_currency or _refund_shop_currency(refund) or "").upper() or None

    lines_total = _ZERO
    refund_lines = _list(refund.get("refund_line_items"), "refund.refund_line_items")
    for index, raw in enumerate(refund_lines):
        path = f"refund.refund_line_items[{index}]"
        refund_line = _mapping(raw, path)
        line_item = refund_line.get("line_item")
        if isinstance(line_item, Mapping) and line_item.get("gift_card") is True:
            continue
        lines_total += _required_money(refund_line, "subtotal", path)

    discrepancy: Decimal | None = None
    legacy_shipping = _ZERO
    adjustments = _list(refund.get("order_adjustments"), "refund.order_adjustments")
    for index, raw in enumerate(adjustments):
        path = f"refund.order_adjustments[{index}]"
        adjustment = _mapping(raw, path)
        amount = _required_money(adjustment, "amount", path)
        if _is_discrepancy(adjustment):
            discrepancy = (discrepancy or _ZERO) + amount
        else:
            tax = _shop_money(adjustment, "tax_amount", path) or _ZERO
            legacy_shipping += abs(amount) + abs(tax)

    amount_only = _ZERO
    if discrepancy is not None:
        amount_only = max(-discrepancy, _ZERO)
    elif not refund_lines:
        transactions = _ZERO
        for index, raw in enumerate(_list(refund.get("transactions"), "refund.transactions")):
            path = f"refund.transactions[{index}]"
            transaction = _mapping(raw, path)
            if _text(transaction, "kind") != "refund" or _text(transaction, "status") != "success":
                continue
            transactions += _transaction_amount(transaction, path, currency, shop_per_presentment)
        shipping = legacy_shipping
        shipping_lines = _list(refund.get("refund_shipping_lines"), "refund.refund_shipping_lines")
        for index, raw in enumerate(shipping_lines):
            path = f"refund.refund_shipping_lines[{index}]"
            shipping_line = _mapping(raw, path)
            shipping += _shop_money(shipping_line, "subtotal_amount", path) or _ZERO
            shipping += _shop_money(shipping_line, "tax_amount", path) or _ZERO
        duties = _shop_money(refund, "total_duties", "refund") or _ZERO
        amount_only = max(transactions - shipping - duties, _ZERO)

    return OrderRefunded(
        order_id=order_id,
        refund_id=refund_id,
        merchandise_refunded=max(lines_total + amount_only, _ZERO),
        created_at=created_at,
        currency=currency,
    )
