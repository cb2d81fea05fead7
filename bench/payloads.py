"""Distinct, realistic `orders/paid` payloads, pre-signed, written where wrk can read them.

Each order is shaped like the API 2026-07 payloads in `tests/fixtures/shopify/` (every
`*_set` money twin, addresses, client details, tax lines, discount allocations, shipping
lines, note attributes and line-item properties), with its own order id, name, line-item
ids, webhook id and event id. Buyers are a realistic mix: about 70% of orders come from a
buyer seen for the first time, the rest from repeat buyers; a few are guest checkouts.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import orjson

from app.integrations.shopify.signing import webhook_hmac

CENT = Decimal("0.01")
TAX_RATE = Decimal("0.08")
SHIPPING_TAX_RATE = Decimal("0.0853")
API_VERSION = "2026-07"
TOPIC = "orders/paid"
EPOCH = datetime(2026, 9, 14, 14, 0, tzinfo=UTC)
SHOPIFY_TZ = timezone(timedelta(hours=-4))

FIRST_NAMES = (
    "Ada", "Grace", "Alan", "Katherine", "Linus", "Margaret", "Edsger", "Barbara", "Donald",
    "Frances", "Ken", "Radia", "Dennis", "Hedy", "John", "Karen", "Tim", "Shafi", "Guido",
    "Sophie", "Leslie", "Joan", "Niklaus", "Evelyn", "Bjarne", "Adele", "Yukihiro", "Mary",
)  # fmt: skip
LAST_NAMES = (
    "Lovelace", "Hopper", "Turing", "Johnson", "Torvalds", "Hamilton", "Dijkstra", "Liskov",
    "Knuth", "Allen", "Thompson", "Perlman", "Ritchie", "Lamarr", "Backus", "Jones", "Lee",
    "Goldwasser", "Rossum", "Wilson", "Lamport", "Clarke", "Wirth", "Berezin", "Stroustrup",
    "Goldberg", "Matsumoto", "Keller",
)  # fmt: skip
CITIES = (
    ("Portland", "Maine", "ME", "04101"),
    ("Burlington", "Vermont", "VT", "05401"),
    ("Providence", "Rhode Island", "RI", "02903"),
    ("Albany", "New York", "NY", "12207"),
    ("Asheville", "North Carolina", "NC", "28801"),
    ("Madison", "Wisconsin", "WI", "53703"),
    ("Boulder", "Colorado", "CO", "80302"),
    ("Santa Fe", "New Mexico", "NM", "87501"),
    ("Bend", "Oregon", "OR", "97701"),
    ("Austin", "Texas", "TX", "78701"),
)
STREETS = ("Harbour Street", "Pine Avenue", "Maple Court", "Elm Road", "Birch Lane", "Main St")
USER_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/139.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.5 Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/139.0.0.0 Mobile Safari/537.36",
)
REFERRERS = (None, "https://www.instagram.com/", "https://www.google.com/", "https://t.co/")


@dataclass(frozen=True, slots=True)
class Product:
    title: str
    variant_title: str | None
    price: Decimal
    grams: int
    gift_card: bool = False


CATALOG = (
    Product("Linen Shirt", "M / Sand", Decimal("49.00"), 300),
    Product("Linen Shirt", "L / Navy", Decimal("49.00"), 320),
    Product("Canvas Tote", None, Decimal("30.00"), 450),
    Product("Wool Beanie", "Charcoal", Decimal("24.00"), 120),
    Product("Merino Socks (3-pack)", "M", Decimal("18.50"), 150),
    Product("Waxed Jacket", "L / Olive", Decimal("189.00"), 1400),
    Product("Ceramic Mug", "Speckled", Decimal("16.00"), 380),
    Product("Field Notebook", "Dot grid", Decimal("12.00"), 200),
    Product("Leather Belt", "34", Decimal("65.00"), 260),
    Product("Chino Trousers", "32 / Stone", Decimal("79.00"), 600),
    Product("Scented Candle", "Cedar", Decimal("28.00"), 500),
    Product("Gift Card $25", None, Decimal("25.00"), 0, gift_card=True),
)
DISCOUNT_CODES = ("WELCOME10", "AUTUMN10", "VIP10")


@dataclass(frozen=True, slots=True)
class Buyer:
    key: int
    guest: bool
    account: bool
    first_name: str
    last_name: str
    email: str
    phone: str
    city: tuple[str, str, str, str]
    street: str


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """One delivery exactly as Shopify would send it."""

    order_id: int
    buyer_key: int
    body: bytes
    headers: dict[str, str]


def _money(amount: Decimal) -> str:
    return str(amount.quantize(CENT, rounding=ROUND_HALF_UP))


def _money_set(amount: Decimal, currency: str = "USD") -> dict[str, Any]:
    value = {"amount": _money(amount), "currency_code": currency}
    return {"shop_money": value, "presentment_money": dict(value)}


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(SHOPIFY_TZ).isoformat()


def _address(buyer: Buyer, address_id: int | None) -> dict[str, Any]:
    city, province, province_code, zip_code = buyer.city
    return {
        "id": address_id,
        "customer_id": None if buyer.guest else 7_000_000_000 + buyer.key,
        "first_name": buyer.first_name,
        "last_name": buyer.last_name,
        "company": None,
        "address1": f"{10 + buyer.key % 890} {buyer.street}",
        "address2": None,
        "city": city,
        "province": province,
        "country": "United States",
        "zip": zip_code,
        "phone": buyer.phone,
        "name": f"{buyer.first_name} {buyer.last_name}",
        "province_code": province_code,
        "country_code": "US",
        "country_name": "United States",
        "default": True,
    }


def _customer(buyer: Buyer, since: datetime) -> dict[str, Any] | None:
    if buyer.guest:
        return None
    customer_id = 7_000_000_000 + buyer.key
    return {
        "id": customer_id,
        "email": buyer.email,
        "created_at": _timestamp(since),
        "updated_at": _timestamp(since),
        "first_name": buyer.first_name,
        "last_name": buyer.last_name,
        "state": "enabled" if buyer.account else "disabled",
        "note": None,
        "verified_email": buyer.account,
        "multipass_identifier": None,
        "tax_exempt": False,
        "phone": buyer.phone,
        "currency": "USD",
        "tax_exemptions": [],
        "admin_graphql_api_id": f"gid://shopify/Customer/{customer_id}",
        "default_address": _address(buyer, 8_000_000_000 + buyer.key),
    }


def _tax_line(amount: Decimal, rate: Decimal, title: str) -> dict[str, Any]:
    return {
        "channel_liable": False,
        "price": _money(amount),
        "price_set": _money_set(amount),
        "rate": float(rate),
        "title": title,
    }


def _line_item(
    line_id: int, product: Product, quantity: int, discount: Decimal, properties: list[Any]
) -> tuple[dict[str, Any], Decimal]:
    product_id = 8_100_000_000 + CATALOG.index(product)
    taxable = not product.gift_card
    tax = ((product.price * quantity - discount) * TAX_RATE).quantize(CENT) if taxable else None
    line = {
        "id": line_id,
        "admin_graphql_api_id": f"gid://shopify/LineItem/{line_id}",
        "attributed_staffs": [],
        "current_quantity": quantity,
        "fulfillable_quantity": quantity,
        "fulfillment_service": "manual",
        "fulfillment_status": None,
        "gift_card": product.gift_card,
        "grams": product.grams,
        "name": (
            f"{product.title} - {product.variant_title}" if product.variant_title else product.title
        ),
        "price": _money(product.price),
        "price_set": _money_set(product.price),
        "product_exists": True,
        "product_id": product_id,
        "properties": properties,
        "quantity": quantity,
        "requires_shipping": not product.gift_card,
        "sku": f"HP-{product_id % 10000:04d}-{quantity}",
        "taxable": taxable,
        "title": product.title,
        "total_discount": "0.00",
        "total_discount_set": _money_set(Decimal(0)),
        "variant_id": product_id + 1_000_000,
        "variant_inventory_management": None if product.gift_card else "shopify",
        "variant_title": product.variant_title,
        "vendor": "Harbour & Pine",
        "tax_lines": [_tax_line(tax, TAX_RATE, "State Tax")] if tax is not None else [],
        "duties": [],
        "discount_allocations": (
            [
                {
                    "amount": _money(discount),
                    "amount_set": _money_set(discount),
                    "discount_application_index": 0,
                }
            ]
            if discount
            else []
        ),
    }
    return line, tax or Decimal(0)


def build_order(
    rng: random.Random, sequence: int, buyer: Buyer, shop_domain: str, target_bytes: int
) -> dict[str, Any]:
    """One order; note attributes are added while the JSON is smaller than `target_bytes`."""
    placed = EPOCH + timedelta(seconds=7 * sequence)
    lines_wanted = rng.choices((1, 2, 3), weights=(75, 20, 5))[0]
    code = rng.choice(DISCOUNT_CODES) if rng.random() < 0.35 else None
    shipped = rng.random() < 0.8
    note_pool = [
        {"name": "gift_message", "value": "Happy birthday! Love from all of us."},
        {"name": "delivery_instructions", "value": "Leave with the neighbour at number 14."},
        {"name": "how_did_you_hear", "value": rng.choice(("instagram", "friend", "podcast"))},
    ]
    notes = [{"name": "_utm_source", "value": rng.choice(("newsletter", "instagram", "direct"))}]
    products = [rng.choice(CATALOG[:-1])] + [rng.choice(CATALOG) for _ in range(2)]
    quantities = [rng.choice((1, 1, 1, 2, 3)) for _ in range(3)]
    while True:
        order = _order(
            sequence, buyer, shop_domain, placed, products[:lines_wanted], quantities, code,
            shipped, notes, rng,
        )  # fmt: skip
        if len(orjson.dumps(order)) >= target_bytes or not note_pool:
            return order
        notes.append(note_pool.pop())


def _order(
    sequence: int,
    buyer: Buyer,
    shop_domain: str,
    placed: datetime,
    products: list[Product],
    quantities: list[int],
    code: str | None,
    shipped: bool,
    notes: list[dict[str, str]],
    rng: random.Random,
) -> dict[str, Any]:
    order_id = 5_900_000_000_000 + sequence
    number = 1000 + sequence
    line_items: list[dict[str, Any]] = []
    gross = discounts = line_tax = Decimal(0)
    for index, (product, quantity) in enumerate(zip(products, quantities, strict=False)):
        discount = Decimal(0)
        if code and not product.gift_card:
            discount = (product.price * quantity * Decimal("0.10")).quantize(CENT)
        properties: list[Any] = []
        if product.title == "Field Notebook":
            initials = f"{buyer.first_name[0]}.{buyer.last_name[0]}."
            properties = [{"name": "Embossing", "value": initials}]
        if product.gift_card:
            properties = [
                {"name": "Recipient email", "value": f"friend.{sequence}@example.net"},
                {"name": "Message", "value": "Enjoy something nice on me."},
            ]
        line, tax = _line_item(order_id * 10 + index, product, quantity, discount, properties)
        line_items.append(line)
        gross += product.price * quantity
        discounts += discount
        line_tax += tax
    subtotal = gross - discounts
    shipping = Decimal("7.50") if shipped and subtotal < 75 else Decimal(0)
    shipping_tax = (shipping * SHIPPING_TAX_RATE).quantize(CENT)
    total_tax = line_tax + shipping_tax
    total = subtotal + shipping + total_tax
    ip = f"203.0.{113 + sequence % 3}.{sequence % 250 + 2}"
    referrer = rng.choice(REFERRERS)
    customer = _customer(buyer, EPOCH - timedelta(days=30 + buyer.key % 400))
    order: dict[str, Any] = {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "app_id": 580111,
        "browser_ip": ip,
        "buyer_accepts_marketing": buyer.account,
        "cancel_reason": None,
        "cancelled_at": None,
        "cart_token": uuid.UUID(int=rng.getrandbits(128)).hex[:24],
        "checkout_id": order_id + 7,
        "checkout_token": uuid.UUID(int=rng.getrandbits(128)).hex,
        "client_details": {
            "accept_language": "en-US",
            "browser_height": None,
            "browser_ip": ip,
            "browser_width": None,
            "session_hash": None,
            "user_agent": rng.choice(USER_AGENTS),
        },
        "closed_at": None,
        "confirmation_number": uuid.UUID(int=rng.getrandbits(128)).hex[:9].upper(),
        "confirmed": True,
        "created_at": _timestamp(placed),
        "customer_locale": "en-US",
        "device_id": None,
        "estimated_taxes": False,
        "financial_status": "paid",
        "fulfillment_status": None,
        "landing_site": "/products/" + products[0].title.lower().replace(" ", "-"),
        "landing_site_ref": None,
        "location_id": None,
        "merchant_of_record_app_id": None,
        "name": f"#{number}",
        "note": None,
        "note_attributes": notes,
        "number": sequence,
        "order_number": number,
        "order_status_url": (
            f"https://{shop_domain}/73012/orders/{uuid.UUID(int=order_id).hex}/authenticate"
            f"?key={uuid.UUID(int=order_id * 31).hex}"
        ),
        "original_total_additional_fees_set": None,
        "original_total_duties_set": None,
        "payment_gateway_names": ["shopify_payments"],
        "po_number": None,
        "processed_at": _timestamp(placed + timedelta(seconds=4)),
        "reference": None,
        "referring_site": referrer,
        "source_identifier": None,
        "source_name": "web",
        "source_url": None,
        "tags": "vip" if buyer.account and buyer.key % 5 == 0 else "",
        "tax_exempt": False,
        "taxes_included": False,
        "test": False,
        "token": uuid.UUID(int=rng.getrandbits(128)).hex,
        "updated_at": _timestamp(placed + timedelta(seconds=7)),
        "user_id": None,
        "billing_address": _address(buyer, None),
        "shipping_address": _address(buyer, None) if shipped else None,
        "fulfillments": [],
        "refunds": [],
        "returns": [],
        "payment_terms": None,
        "email": buyer.email.lower(),
        "contact_email": buyer.email.lower(),
        "phone": None,
        "customer": customer,
        "discount_codes": (
            [{"code": code, "amount": _money(discounts), "type": "percentage"}] if code else []
        ),
        "discount_applications": (
            [
                {
                    "target_type": "line_item",
                    "type": "discount_code",
                    "value": "10.0",
                    "value_type": "percentage",
                    "allocation_method": "across",
                    "target_selection": "all",
                    "code": code,
                }
            ]
            if code
            else []
        ),
        "line_items": line_items,
        "shipping_lines": (
            [
                {
                    "id": order_id + 3,
                    "carrier_identifier": None,
                    "code": "Standard",
                    "discounted_price": _money(shipping),
                    "discounted_price_set": _money_set(shipping),
                    "is_removed": False,
                    "phone": None,
                    "price": _money(shipping),
                    "price_set": _money_set(shipping),
                    "requested_fulfillment_service_id": None,
                    "source": "shopify",
                    "title": "Standard",
                    "tax_lines": [_tax_line(shipping_tax, SHIPPING_TAX_RATE, "Shipping Tax")],
                    "discount_allocations": [],
                }
            ]
            if shipped
            else []
        ),
        "tax_lines": [_tax_line(total_tax, TAX_RATE, "State Tax")],
    }
    totals = {
        "total_price": total,
        "subtotal_price": subtotal,
        "total_line_items_price": gross,
        "total_discounts": discounts,
        "total_tax": total_tax,
        "total_tip_received": Decimal(0),
        "total_outstanding": Decimal(0),
        "current_total_price": total,
        "current_subtotal_price": subtotal,
        "current_total_discounts": discounts,
        "current_total_tax": total_tax,
    }
    for name, amount in totals.items():
        order[name] = _money(amount)
        order[f"{name}_set"] = _money_set(amount)
    order["total_shipping_price_set"] = _money_set(shipping)
    order["currency"] = "USD"
    order["presentment_currency"] = "USD"
    order["total_weight"] = sum(line["grams"] * line["quantity"] for line in line_items)
    return order


def _new_buyer(rng: random.Random, key: int) -> Buyer:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    return Buyer(
        key=key,
        guest=rng.random() < 0.08,
        account=rng.random() < 0.6,
        first_name=first,
        last_name=last,
        email=f"{first}.{last}.{key}@Example.com",
        phone=f"+1207555{key % 10000:04d}",
        city=rng.choice(CITIES),
        street=rng.choice(STREETS),
    )


def signed_orders(
    count: int,
    *,
    secret: str,
    shop_domain: str,
    seed: int = 42,
    first_sequence: int = 1,
    new_buyer_share: float = 0.7,
    target_bytes: int = 5120,
) -> list[SignedRequest]:
    """`count` distinct orders/paid deliveries, each signed with `secret`."""
    rng = random.Random(seed)
    buyers: list[Buyer] = []
    requests: list[SignedRequest] = []
    for offset in range(count):
        sequence = first_sequence + offset
        if not buyers or rng.random() < new_buyer_share:
            buyer = _new_buyer(rng, sequence)
            buyers.append(buyer)
        else:
            buyer = rng.choice(buyers)
        body = orjson.dumps(build_order(rng, sequence, buyer, shop_domain, target_bytes))
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": TOPIC,
            "X-Shopify-Shop-Domain": shop_domain,
            "X-Shopify-Hmac-Sha256": webhook_hmac(secret, body),
            "X-Shopify-Webhook-Id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "X-Shopify-Event-Id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "X-Shopify-API-Version": API_VERSION,
            "X-Shopify-Triggered-At": (EPOCH + timedelta(seconds=7 * sequence + 9)).isoformat(),
        }
        requests.append(SignedRequest(5_900_000_000_000 + sequence, buyer.key, body, headers))
    return requests


def write_manifest(requests: list[SignedRequest], directory: Path, name: str) -> Path:
    """One body file per request plus a manifest wrk's Lua script reads at start-up.

    Manifest line: `<body file>\\t<Header>: <value>\\t...`, paths relative to the manifest.
    """
    bodies = directory / "bodies"
    bodies.mkdir(parents=True, exist_ok=True)
    lines = []
    for request in requests:
        body_name = f"bodies/{request.order_id}.json"
        (directory / body_name).write_bytes(request.body)
        headers = "\t".join(f"{key}: {value}" for key, value in request.headers.items())
        lines.append(f"{body_name}\t{headers}\n")
    manifest = directory / name
    manifest.write_text("".join(lines))
    return manifest
