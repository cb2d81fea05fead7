"""The demo shop's data, delivered as the signed webhooks Shopify would send.

Only the shop row is written directly (an install sends no webhook). Customers, orders, a
partial refund and a cancellation all go to `POST /webhooks/shopify` through an injected
HTTP client: `stamp demo` passes one speaking to the running server, the tests one speaking
ASGI, so both exercise exactly the path Shopify's deliveries take. Webhook ids, order ids
and customer ids are fixed, so seeding the same database twice changes nothing.

Payloads follow the API 2026-07 shapes of `tests/fixtures/shopify/*.json` (money in
`*_set.shop_money`, discounts in each line's `discount_allocations`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import orjson

from app.db import unit_of_work
from app.demo import (
    DEMO_CURRENCY,
    DEMO_SHOP,
    DEMO_SHOP_EMAIL,
    DEMO_SHOP_ID,
    DEMO_SHOP_NAME,
    DEMO_TIMEZONE,
)
from app.integrations.shopify.signing import webhook_hmac
from app.models import Shop, ShopStatus
from app.models.base import utcnow
from app.program.service import ensure_default_program
from app.settings import Settings
from app.shops.repository import ShopRepository
from app.state import State

WEBHOOK_PATH = "/webhooks/shopify"
DEMO_ACCESS_TOKEN = "shpat_demo_local_stand_in_not_a_real_token"
# uuid5 namespace: the same event always gets the same X-Shopify-Webhook-Id.
_NAMESPACE = uuid.UUID("5d1e7a52-3c0b-4f7e-9a51-6f1d2c9b8e40")
_CENT = Decimal("0.01")
TAX_RATE = Decimal("0.08")
SHIPPING = Decimal("7.50")
FREE_SHIPPING_FROM = Decimal("75.00")
ORDER_ID_BASE = 5_950_000_000_000
APP_ID = 580111


class SeedError(RuntimeError):
    """A seed delivery was refused or dead-lettered: the demo data would be wrong."""


# --- the catalogue, the shoppers and what they did ------------------------------------------


@dataclass(frozen=True, slots=True)
class Product:
    product_id: int
    variant_id: int
    title: str
    price: Decimal
    sku: str
    grams: int = 300
    gift_card: bool = False


PRODUCTS: dict[str, Product] = {
    "shirt": Product(8_100_000_001, 9_100_000_001, "Linen Shirt", Decimal("25.00"), "LS-01"),
    "tote": Product(8_100_000_002, 9_100_000_002, "Canvas Tote", Decimal("30.00"), "CT-02"),
    "mug": Product(8_100_000_003, 9_100_000_003, "Enamel Mug", Decimal("14.50"), "EM-03"),
    "throw": Product(8_100_000_004, 9_100_000_004, "Wool Throw", Decimal("89.00"), "WT-04"),
    "jacket": Product(8_100_000_005, 9_100_000_005, "Rain Jacket", Decimal("140.00"), "RJ-05"),
    "notebook": Product(8_100_000_006, 9_100_000_006, "Field Notebook", Decimal("9.75"), "FN-06"),
    "giftcard": Product(
        8_100_000_007, 9_100_000_007, "Gift Card $25", Decimal("25.00"), "GC-25", 0, True
    ),
}
DEMO_PURCHASE = Product(8_100_000_099, 9_100_000_099, "Demo purchase", Decimal("0"), "DEMO-99")


@dataclass(frozen=True, slots=True)
class DemoCustomer:
    """A shopper. `customer_id` None is a guest with no customer record at all.

    `state` is Shopify's: "enabled" is a store account (signup bonus), "disabled" is the
    record a guest checkout creates, "invited" has not accepted yet.
    """

    key: str
    customer_id: int | None
    first_name: str
    last_name: str
    email: str
    state: str | None
    city: str
    province_code: str
    zip: str


CUSTOMERS: tuple[DemoCustomer, ...] = (
    DemoCustomer("ada", 7_400_000_000_001, "Ada", "Lovelace", "ada@demo.example", "enabled",
                 "Portland", "ME", "04101"),
    DemoCustomer("grace", 7_400_000_000_002, "Grace", "Hopper", "grace@demo.example", "enabled",
                 "Arlington", "VA", "22201"),
    DemoCustomer("alan", 7_400_000_000_003, "Alan", "Turing", "alan@demo.example", "enabled",
                 "Princeton", "NJ", "08540"),
    DemoCustomer("katherine", 7_400_000_000_004, "Katherine", "Johnson",
                 "katherine@demo.example", "enabled", "Hampton", "VA", "23666"),
    DemoCustomer("dorothy", 7_400_000_000_005, "Dorothy", "Vaughan", "dorothy@demo.example",
                 "enabled", "Newport News", "VA", "23601"),
    DemoCustomer("hedy", 7_400_000_000_006, "Hedy", "Lamarr", "hedy@demo.example", "disabled",
                 "Los Angeles", "CA", "90001"),
    DemoCustomer("margaret", 7_400_000_000_007, "Margaret", "Hamilton",
                 "margaret@demo.example", "invited", "Boston", "MA", "02108"),
    DemoCustomer("rosalind", None, "Rosalind", "Franklin", "rosalind@demo.example", None,
                 "Chicago", "IL", "60601"),
)  # fmt: skip
CUSTOMERS_BY_KEY = {customer.key: customer for customer in CUSTOMERS}


@dataclass(frozen=True, slots=True)
class DemoOrder:
    number: int
    customer: str
    lines: tuple[tuple[str, int], ...]
    discount_code: str | None = None

    @property
    def order_id(self) -> int:
        return ORDER_ID_BASE + self.number


DISCOUNT_CODES = {"WELCOME10": Decimal("10")}  # percentage off every non-gift-card line

ORDERS: tuple[DemoOrder, ...] = (
    DemoOrder(1001, "ada", (("jacket", 2),)),
    DemoOrder(1002, "grace", (("throw", 5),)),
    DemoOrder(1003, "alan", (("shirt", 3),)),
    DemoOrder(1004, "katherine", (("tote", 2),), "WELCOME10"),
    DemoOrder(1005, "ada", (("throw", 1), ("shirt", 1)), "WELCOME10"),
    DemoOrder(1006, "grace", (("jacket", 4),)),
    DemoOrder(1007, "alan", (("tote", 1), ("mug", 2))),
    DemoOrder(1008, "hedy", (("shirt", 1), ("notebook", 1))),
    DemoOrder(1009, "ada", (("jacket", 1),)),
    DemoOrder(1010, "grace", (("jacket", 2),)),
    DemoOrder(1011, "alan", (("throw", 1),)),
    DemoOrder(1012, "katherine", (("mug", 1),)),
    DemoOrder(1013, "ada", (("throw", 1), ("mug", 1))),
    DemoOrder(1014, "grace", (("throw", 1),)),
    DemoOrder(1015, "alan", (("notebook", 3),)),
    DemoOrder(1016, "hedy", (("jacket", 1),)),
    DemoOrder(1017, "ada", (("giftcard", 1), ("notebook", 1))),
    DemoOrder(1018, "katherine", (("shirt", 2),)),
    DemoOrder(1019, "margaret", (("throw", 1),)),
    DemoOrder(1020, "rosalind", (("tote", 1), ("mug", 1))),
)
ORDERS_BY_NUMBER = {order.number: order for order in ORDERS}


@dataclass(frozen=True, slots=True)
class DemoRefund:
    refund_id: int
    order_number: int
    lines: tuple[tuple[str, int], ...]
    note: str


@dataclass(frozen=True, slots=True)
class DemoCancellation:
    order_number: int
    reason: str


PARTIAL_REFUND = DemoRefund(990_000_001, 1006, (("jacket", 1),), "One jacket returned")
CANCELLATION = DemoCancellation(1011, "customer")

# The order things happen in: tiers depend on it (a multiplier applies to orders placed
# after reaching a tier), so the expected balances in tests/demo follow this sequence.
Step = tuple[str, int | str]
TIMELINE: tuple[Step, ...] = (
    *(("customer", c.key) for c in CUSTOMERS if c.customer_id is not None),
    *(("order", number) for number in range(1001, 1013)),
    ("cancel", CANCELLATION.order_number),
    *(("order", number) for number in range(1013, 1021)),
    ("refund", PARTIAL_REFUND.refund_id),
)


# --- payload shapes ---------------------------------------------------------------------------


def money(amount: Decimal) -> str:
    return str(amount.quantize(_CENT, rounding=ROUND_HALF_UP))


def money_set(amount: Decimal, currency: str = DEMO_CURRENCY) -> dict[str, Any]:
    value = {"amount": money(amount), "currency_code": currency}
    return {"shop_money": value, "presentment_money": dict(value)}


def _iso(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat()


def _address(customer: DemoCustomer) -> dict[str, Any]:
    return {
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "company": None,
        "address1": "1 Demo Street",
        "address2": None,
        "city": customer.city,
        "province": customer.province_code,
        "country": "United States",
        "zip": customer.zip,
        "phone": None,
        "name": f"{customer.first_name} {customer.last_name}",
        "province_code": customer.province_code,
        "country_code": "US",
        "country_name": "United States",
    }


def customer_payload(customer: DemoCustomer, created_at: datetime) -> dict[str, Any]:
    """A customer resource as `customers/create` sends it (and as orders embed it)."""
    assert customer.customer_id is not None
    address = {
        "id": customer.customer_id + 1_000_000,
        "customer_id": customer.customer_id,
        **_address(customer),
        "default": True,
    }
    return {
        "id": customer.customer_id,
        "email": customer.email,
        "created_at": _iso(created_at),
        "updated_at": _iso(created_at),
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "state": customer.state,
        "note": None,
        "verified_email": customer.state == "enabled",
        "multipass_identifier": None,
        "tax_exempt": False,
        "phone": None,
        "currency": DEMO_CURRENCY,
        "tax_exemptions": [],
        "admin_graphql_api_id": f"gid://shopify/Customer/{customer.customer_id}",
        "default_address": address,
        "addresses": [address],
    }


@dataclass(frozen=True, slots=True)
class _Line:
    line_id: int
    product: Product
    quantity: int
    discount: Decimal
    tax: Decimal

    @property
    def gross(self) -> Decimal:
        return self.product.price * self.quantity


def _lines(
    line_id_base: int, items: Sequence[tuple[Product, int]], percent_off: Decimal | None
) -> list[_Line]:
    lines = []
    for index, (product, quantity) in enumerate(items):
        gross = product.price * quantity
        discount = Decimal(0)
        if percent_off and not product.gift_card:
            discount = (gross * percent_off / 100).quantize(_CENT, rounding=ROUND_HALF_UP)
        tax = Decimal(0)
        if not product.gift_card:
            tax = ((gross - discount) * TAX_RATE).quantize(_CENT, rounding=ROUND_HALF_UP)
        lines.append(_Line(line_id_base + index, product, quantity, discount, tax))
    return lines


def _line_item(line: _Line) -> dict[str, Any]:
    product = line.product
    allocations = []
    if line.discount:
        allocations.append(
            {
                "amount": money(line.discount),
                "amount_set": money_set(line.discount),
                "discount_application_index": 0,
            }
        )
    tax_lines = []
    if line.tax:
        tax_lines.append(
            {
                "channel_liable": False,
                "price": money(line.tax),
                "price_set": money_set(line.tax),
                "rate": float(TAX_RATE),
                "title": "State Tax",
            }
        )
    return {
        "id": line.line_id,
        "admin_graphql_api_id": f"gid://shopify/LineItem/{line.line_id}",
        "attributed_staffs": [],
        "current_quantity": line.quantity,
        "fulfillable_quantity": line.quantity,
        "fulfillment_service": "manual",
        "fulfillment_status": None,
        "gift_card": product.gift_card,
        "grams": product.grams,
        "name": product.title,
        "price": money(product.price),
        "price_set": money_set(product.price),
        "product_exists": True,
        "product_id": product.product_id,
        "properties": [],
        "quantity": line.quantity,
        "requires_shipping": not product.gift_card,
        "sku": product.sku,
        "taxable": not product.gift_card,
        "title": product.title,
        "total_discount": "0.00",
        "total_discount_set": money_set(Decimal(0)),
        "variant_id": product.variant_id,
        "variant_inventory_management": None if product.gift_card else "shopify",
        "variant_title": None,
        "vendor": DEMO_SHOP_NAME,
        "tax_lines": tax_lines,
        "duties": [],
        "discount_allocations": allocations,
    }


def _line_id_base(order_id: int) -> int:
    return 14_000_000_000_000 + (order_id % 1_000_000_000) * 100


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """Everything that makes one order payload; `customer` None with `email` is a guest."""

    order_id: int
    number: int
    customer: DemoCustomer | None
    email: str
    items: tuple[tuple[Product, int], ...]
    placed_at: datetime
    discount_code: str | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    source_name: str = "web"
    customer_since: datetime | None = None
    tags: tuple[str, ...] = ()


def order_payload(spec: OrderSpec) -> dict[str, Any]:
    """An order resource as `orders/create`, `orders/paid` and `orders/cancelled` send it."""
    percent = DISCOUNT_CODES.get(spec.discount_code) if spec.discount_code else None
    lines = _lines(_line_id_base(spec.order_id), spec.items, percent)
    line_items_price = sum((line.gross for line in lines), Decimal(0))
    discounts = sum((line.discount for line in lines), Decimal(0))
    tax = sum((line.tax for line in lines), Decimal(0))
    goods = sum(
        (line.gross - line.discount for line in lines if not line.product.gift_card), Decimal(0)
    )
    ships = any(not line.product.gift_card for line in lines)
    shipping = SHIPPING if ships and goods < FREE_SHIPPING_FROM else Decimal(0)
    subtotal = line_items_price - discounts
    total = subtotal + shipping + tax
    cancelled = spec.cancelled_at is not None
    customer = spec.customer
    address = _address(customer) if customer else None
    updated_at = spec.cancelled_at or spec.placed_at + timedelta(seconds=3)
    discount_codes: list[dict[str, Any]] = []
    discount_applications: list[dict[str, Any]] = []
    if spec.discount_code and percent is not None:
        discount_codes.append(
            {"code": spec.discount_code, "amount": money(discounts), "type": "percentage"}
        )
        discount_applications.append(
            {
                "target_type": "line_item",
                "type": "discount_code",
                "value": f"{percent:.1f}",
                "value_type": "percentage",
                "allocation_method": "across",
                "target_selection": "all",
                "code": spec.discount_code,
            }
        )
    embedded_customer = None
    if customer is not None and customer.customer_id is not None:
        embedded_customer = customer_payload(customer, spec.customer_since or spec.placed_at)
        embedded_customer.pop("addresses")
    totals = {
        "total_price": total,
        "subtotal_price": subtotal,
        "total_line_items_price": line_items_price,
        "total_discounts": discounts,
        "total_tax": tax,
        "current_total_price": Decimal(0) if cancelled else total,
        "current_subtotal_price": Decimal(0) if cancelled else subtotal,
        "current_total_discounts": Decimal(0) if cancelled else discounts,
        "current_total_tax": Decimal(0) if cancelled else tax,
        "total_outstanding": Decimal(0),
        "total_tip_received": Decimal(0),
    }
    payload: dict[str, Any] = {
        "id": spec.order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{spec.order_id}",
        "app_id": APP_ID,
        "browser_ip": "203.0.113.24",
        "buyer_accepts_marketing": customer is not None and customer.state == "enabled",
        "cancel_reason": spec.cancel_reason,
        "cancelled_at": _iso(spec.cancelled_at) if spec.cancelled_at else None,
        "cart_token": f"demo-cart-{spec.number}",
        "checkout_id": spec.order_id + 7,
        "checkout_token": f"demo-checkout-{spec.number}",
        "closed_at": None,
        "confirmation_number": f"DEMO{spec.number}",
        "confirmed": True,
        "contact_email": spec.email,
        "created_at": _iso(spec.placed_at),
        "currency": DEMO_CURRENCY,
        "customer_locale": "en-US",
        "discount_applications": discount_applications,
        "discount_codes": discount_codes,
        "email": spec.email,
        "estimated_taxes": False,
        "financial_status": "voided" if cancelled else "paid",
        "fulfillment_status": None,
        "landing_site": "/",
        "name": f"#{spec.number}",
        "note": None,
        "note_attributes": [],
        "number": spec.number - 1000,
        "order_number": spec.number,
        "order_status_url": (
            f"https://{DEMO_SHOP}/68000000001/orders/demo{spec.order_id}/authenticate"
        ),
        "payment_gateway_names": ["bogus"],
        "phone": None,
        "presentment_currency": DEMO_CURRENCY,
        "processed_at": _iso(spec.placed_at),
        "referring_site": None,
        "source_name": spec.source_name,
        "tags": ", ".join(spec.tags),
        "tax_exempt": False,
        "taxes_included": False,
        "test": False,
        "token": f"demo-token-{spec.order_id}",
        "updated_at": _iso(updated_at),
        "user_id": None,
        "billing_address": address,
        "shipping_address": address,
        "customer": embedded_customer,
        "line_items": [_line_item(line) for line in lines],
        "shipping_lines": _shipping_lines(spec.order_id, shipping),
        "tax_lines": (
            [
                {
                    "price": money(tax),
                    "rate": float(TAX_RATE),
                    "title": "State Tax",
                    "price_set": money_set(tax),
                    "channel_liable": False,
                }
            ]
            if tax
            else []
        ),
        "total_shipping_price_set": money_set(shipping),
        "total_weight": sum(line.product.grams * line.quantity for line in lines),
        "fulfillments": [],
        "refunds": [],
        "returns": [],
        "payment_terms": None,
    }
    for name, amount in totals.items():
        payload[name] = money(amount)
        payload[f"{name}_set"] = money_set(amount)
    return payload


def _shipping_lines(order_id: int, shipping: Decimal) -> list[dict[str, Any]]:
    if not shipping:
        return []
    return [
        {
            "id": order_id + 11,
            "carrier_identifier": None,
            "code": "Standard",
            "discounted_price": money(shipping),
            "discounted_price_set": money_set(shipping),
            "is_removed": False,
            "phone": None,
            "price": money(shipping),
            "price_set": money_set(shipping),
            "source": "shopify",
            "title": "Standard",
            "tax_lines": [],
            "discount_allocations": [],
        }
    ]


def refund_payload(
    refund: DemoRefund, order: dict[str, Any], created_at: datetime
) -> dict[str, Any]:
    """A `refunds/create` for some units of an order's lines, money back to the card."""
    by_product = {line["product_id"]: line for line in order["line_items"]}
    refund_lines = []
    total = Decimal(0)
    for index, (key, quantity) in enumerate(refund.lines):
        line = by_product[PRODUCTS[key].product_id]
        ordered = int(line["quantity"])
        allocated = sum(
            (
                Decimal(a["amount_set"]["shop_money"]["amount"])
                for a in line["discount_allocations"]
            ),
            Decimal(0),
        )
        subtotal = (Decimal(line["price"]) * quantity - allocated * quantity / ordered).quantize(
            _CENT, rounding=ROUND_HALF_UP
        )
        tax = (subtotal * TAX_RATE).quantize(_CENT, rounding=ROUND_HALF_UP)
        total += subtotal + tax
        refund_lines.append(
            {
                "id": refund.refund_id * 10 + index,
                "quantity": quantity,
                "line_item_id": line["id"],
                "location_id": 61_000_000_001,
                "restock_type": "return",
                "subtotal": float(subtotal),
                "total_tax": float(tax),
                "subtotal_set": money_set(subtotal),
                "total_tax_set": money_set(tax),
                "line_item": line,
            }
        )
    return {
        "id": refund.refund_id,
        "admin_graphql_api_id": f"gid://shopify/Refund/{refund.refund_id}",
        "order_id": order["id"],
        "created_at": _iso(created_at),
        "processed_at": _iso(created_at),
        "note": refund.note,
        "restock": True,
        "user_id": 90_011,
        "duties": [],
        "total_duties_set": money_set(Decimal(0)),
        "return": None,
        "refund_shipping_lines": [],
        "order_adjustments": [],
        "refund_line_items": refund_lines,
        "transactions": [
            {
                "id": refund.refund_id + 7,
                "admin_graphql_api_id": f"gid://shopify/OrderTransaction/{refund.refund_id + 7}",
                "order_id": order["id"],
                "kind": "refund",
                "gateway": "bogus",
                "status": "success",
                "message": "Bogus Gateway: Forced success",
                "created_at": _iso(created_at),
                "test": False,
                "authorization": None,
                "parent_id": order["id"] + 5,
                "processed_at": _iso(created_at),
                "source_name": "web",
                "amount": money(total),
                "currency": DEMO_CURRENCY,
            }
        ],
    }


# --- the seed as a list of webhooks -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Webhook:
    """One delivery: what Shopify would POST, before signing."""

    topic: str
    webhook_id: str
    event_id: str
    triggered_at: datetime
    payload: dict[str, Any]


def webhook_id(key: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, key))


def _order_spec(order: DemoOrder, start: datetime) -> OrderSpec:
    customer = CUSTOMERS_BY_KEY[order.customer]
    return OrderSpec(
        order_id=order.order_id,
        number=order.number,
        customer=customer if customer.customer_id is not None else None,
        email=customer.email,
        items=tuple((PRODUCTS[key], quantity) for key, quantity in order.lines),
        placed_at=_placed_at(order.number, start),
        discount_code=order.discount_code,
        customer_since=_customer_since(customer, start),
    )


def _placed_at(number: int, start: datetime) -> datetime:
    return start + timedelta(days=2 * (number - 1000), hours=number % 7 + 9)


def _customer_since(customer: DemoCustomer, start: datetime) -> datetime:
    position = [c.key for c in CUSTOMERS].index(customer.key)
    return start - timedelta(days=20 - position, hours=3)


def seed_webhooks(now: datetime) -> list[Webhook]:
    """The demo's deliveries in timeline order, dated over the last six weeks before `now`."""
    start = now.replace(microsecond=0) - timedelta(days=44)
    hooks: list[Webhook] = []
    for kind, key in TIMELINE:
        if kind == "customer":
            customer = CUSTOMERS_BY_KEY[str(key)]
            since = _customer_since(customer, start)
            hooks.append(
                Webhook(
                    "customers/create",
                    webhook_id(f"customers/create:{customer.key}"),
                    webhook_id(f"event:customer:{customer.key}"),
                    since,
                    customer_payload(customer, since),
                )
            )
        elif kind == "order":
            spec = _order_spec(ORDERS_BY_NUMBER[int(key)], start)
            payload = order_payload(spec)
            event = webhook_id(f"event:order:{spec.number}")
            for topic in ("orders/create", "orders/paid"):
                hooks.append(
                    Webhook(
                        topic, webhook_id(f"{topic}:{spec.number}"), event, spec.placed_at, payload
                    )
                )
        elif kind == "cancel":
            spec = _order_spec(ORDERS_BY_NUMBER[int(key)], start)
            cancelled_at = spec.placed_at + timedelta(hours=20)
            spec = replace(spec, cancelled_at=cancelled_at, cancel_reason=CANCELLATION.reason)
            hooks.append(
                Webhook(
                    "orders/cancelled",
                    webhook_id(f"orders/cancelled:{spec.number}"),
                    webhook_id(f"event:cancel:{spec.number}"),
                    cancelled_at,
                    order_payload(spec),
                )
            )
        else:
            spec = _order_spec(ORDERS_BY_NUMBER[PARTIAL_REFUND.order_number], start)
            refunded_at = now.replace(microsecond=0) - timedelta(days=1)
            hooks.append(
                Webhook(
                    "refunds/create",
                    webhook_id(f"refunds/create:{PARTIAL_REFUND.refund_id}"),
                    webhook_id(f"event:refund:{PARTIAL_REFUND.refund_id}"),
                    refunded_at,
                    refund_payload(PARTIAL_REFUND, order_payload(spec), refunded_at),
                )
            )
    return hooks


def signed(
    settings: Settings, hook: Webhook, shop: str = DEMO_SHOP
) -> tuple[bytes, dict[str, str]]:
    """Body and headers exactly as Shopify signs them: base64 HMAC-SHA256 of the raw body."""
    body = orjson.dumps(hook.payload)
    return body, {
        "Content-Type": "application/json",
        "X-Shopify-Topic": hook.topic,
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Hmac-Sha256": webhook_hmac(settings.shopify_api_secret, body),
        "X-Shopify-Webhook-Id": hook.webhook_id,
        "X-Shopify-Event-Id": hook.event_id,
        "X-Shopify-API-Version": settings.SHOPIFY_API_VERSION,
        "X-Shopify-Triggered-At": hook.triggered_at.isoformat(),
    }


async def deliver(client: httpx.AsyncClient, settings: Settings, hook: Webhook) -> str:
    """POST one webhook; the receiver's result ("processed", "duplicate"), or SeedError."""
    body, headers = signed(settings, hook)
    response = await client.post(WEBHOOK_PATH, content=body, headers=headers)
    try:
        result = str(response.json().get("result", ""))
    except ValueError:
        result = ""
    if response.status_code != 200 or result not in {"processed", "duplicate"}:
        raise SeedError(
            f"{hook.topic} ({hook.webhook_id}) answered {response.status_code}: "
            f"{response.text[:300]}"
        )
    return result


# --- the shop and the whole seed ------------------------------------------------------------


async def ensure_demo_shop(state: State) -> Shop:
    """The demo shop, installed, in USD, with its default program and a fake token.

    Installing sends no webhook, so this is the one thing written directly. An existing
    demo shop keeps whatever it has; only what an install would set is filled in.
    """
    async with unit_of_work(state.sessionmaker) as session:
        shop = await ShopRepository(session).get_or_create_by_domain(DEMO_SHOP)
        if shop.status != ShopStatus.installed or shop.access_token_enc is None:
            shop.platform_shop_id = DEMO_SHOP_ID
            shop.name = DEMO_SHOP_NAME
            shop.email = DEMO_SHOP_EMAIL
            shop.currency = DEMO_CURRENCY
            shop.iana_timezone = DEMO_TIMEZONE
            shop.scopes = state.settings.SHOPIFY_SCOPES
            shop.status = ShopStatus.installed
            shop.installed_at = utcnow()
            shop.uninstalled_at = None
            shop.access_token_enc = state.cipher.encrypt(DEMO_ACCESS_TOKEN)
            shop.access_token_expires_at = None
            await session.flush()
        await ensure_default_program(session, shop)
    return shop


@dataclass(frozen=True, slots=True)
class SeedResult:
    processed: int
    duplicate: int

    @property
    def total(self) -> int:
        return self.processed + self.duplicate


async def seed(client: httpx.AsyncClient, state: State, now: datetime | None = None) -> SeedResult:
    """Install the demo shop and deliver every seed webhook through `client`, in order.

    `client` must reach the app (its base URL, or an ASGI transport); `state` is used only
    for the shop row and the webhook secret.
    """
    await ensure_demo_shop(state)
    results = [
        await deliver(client, state.settings, hook) for hook in seed_webhooks(now or utcnow())
    ]
    return SeedResult(results.count("processed"), results.count("duplicate"))
