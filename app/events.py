"""Domain events: what the platforms told us, in Stamp's own words.

These sit at the bottom of the dependency graph. Webhook normalisers build them, the pure
program rules read them and the engine applies them, so this module imports nothing from
`app`. Money is always `Decimal` in the shop's currency (`*_set.shop_money`), never float,
and every datetime is timezone-aware.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypeAlias


@dataclass(frozen=True, slots=True)
class CustomerInfo:
    """Who placed an order or changed their profile.

    `email` is normalised (stripped, lower-cased) so members can be matched on it.
    `is_account` is True only for a real store account (Shopify state "enabled"); a guest
    checkout's customer record is not one.
    """

    customer_id: str | None
    email: str | None
    first_name: str | None
    last_name: str | None
    phone: str | None
    is_account: bool


@dataclass(frozen=True, slots=True)
class OrderLine:
    """One order line in shop money.

    `discount` is this line's share of every discount, line-level and order-level.
    `merchandise` is `unit_price * quantity - discount`; gift cards are included here but
    flagged, and the order-level merchandise leaves them out.
    """

    line_id: str
    product_id: str | None
    variant_id: str | None
    quantity: int
    unit_price: Decimal
    discount: Decimal
    gift_card: bool
    merchandise: Decimal


@dataclass(frozen=True, slots=True)
class OrderPaid:
    """An order worth earning on (or re-checking): created, paid, updated or fulfilled.

    `merchandise` is what the shopper spent on goods after discounts, without shipping,
    tax, tips or gift-card purchases; `total` is the whole order total. Both are shop money.
    """

    order_id: str
    name: str | None
    customer: CustomerInfo | None
    email: str | None
    currency: str
    merchandise: Decimal
    total: Decimal
    lines: tuple[OrderLine, ...]
    discount_codes: tuple[str, ...]
    is_test: bool
    source_name: str | None
    financial_status: str | None
    placed_at: datetime
    landing_site: str | None
    referring_site: str | None
    note_attributes: tuple[tuple[str, str], ...]
    tags: tuple[str, ...]
    cancelled: bool


@dataclass(frozen=True, slots=True)
class OrderRefunded:
    """A refund, reduced to the merchandise amount it gave back (shop money, never < 0)."""

    order_id: str
    refund_id: str
    merchandise_refunded: Decimal
    created_at: datetime
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class OrderCancelled:
    """An order was cancelled: everything it earned is reversed."""

    order_id: str
    cancelled_at: datetime
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class CustomerCreated:
    """A customer record appeared; `state` is the platform's raw account state."""

    customer: CustomerInfo
    state: str | None


@dataclass(frozen=True, slots=True)
class CustomerUpdated:
    """A customer record changed (e.g. a guest activated an account)."""

    customer: CustomerInfo
    state: str | None


@dataclass(frozen=True, slots=True)
class CustomAction:
    """A merchant-defined action reported through the headless API."""

    action: str
    customer_id: str | None
    email: str | None
    idempotency_key: str
    occurred_at: datetime
    points: int | None = None


@dataclass(frozen=True, slots=True)
class ReviewPublished:
    """A product review went live on a review platform (e.g. Judge.me)."""

    review_id: str
    source: str
    customer_id: str | None
    email: str | None
    product_id: str | None
    rating: int | None
    has_media: bool
    published_at: datetime


DomainEvent: TypeAlias = (
    OrderPaid
    | OrderRefunded
    | OrderCancelled
    | CustomerCreated
    | CustomerUpdated
    | CustomAction
    | ReviewPublished
)
