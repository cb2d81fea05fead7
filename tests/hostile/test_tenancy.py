"""Tenancy: every route of the app, tried with shop B's ids and shop A's credentials.

The routes come from the app's own route table. Each falls in a family:
- `/api/v1/...`: shop A's API key with B's ids in the path, query and body;
- `/proxy/...`: shop A's app-proxy signature naming B's customer (and B's referral code);
- `/woo/api/...`: a storefront token signed with store A's secret but claiming store B;
- everything else is listed in `ATTACKS` with its own attempt, or in `PUBLIC` (no shop
  data at all). A route in none of these fails `test_every_route_is_classified` until
  someone says how to attack it.
For every attempt: no 5xx, nothing of B's in the answer (B's email, name, balance,
referral code, reward), and none of B's rows changed or pointed at (a snapshot of every
row with B's shop id or one of B's member ids, before and after).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
import respx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.routing import Mount, Route

from app.api.openapi import build_document
from app.api.routes import _operations
from app.crypto import Cipher
from app.integrations.shopify.signing import app_proxy_signature
from app.integrations.woocommerce.client import Credentials
from app.integrations.woocommerce.connect import sign_state as sign_woo_state
from app.integrations.woocommerce.storefront import mint_customer_token
from app.ledger import service as ledger
from app.main import create_app
from app.models import (
    Base,
    DeadLetter,
    Member,
    MemberEvent,
    OutgoingDelivery,
    Platform,
    Referral,
    Shop,
    ShopStatus,
    WebhookSubscription,
)
from app.models.base import utcnow
from app.program.service import ensure_default_program
from app.settings import Settings, get_settings
from app.shops.service import sign_state as sign_shopify_state
from app.state import State
from tests.builders import api_key_for, create_member, create_shop, shopify_webhook
from tests.integrations.judgeme import support as judgeme
from tests.integrations.woocommerce import support as woo
from tests.rewards.test_redemptions import CREATED
from tests.shops.support import callback_query, session_token

SHOPIFY_ORDER = Path(__file__).resolve().parents[1] / "fixtures" / "shopify" / "orders_paid.json"
SHOP_A = "a-shop.myshopify.com"
SHOP_B = "b-shop.myshopify.com"
STORE_A = "a-store.example.com"
STORE_B = "b-store.example.com"
SECRET_A = "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0"
SECRET_B = "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1"
TOKEN_A = "jm_token_shop_a_0123456789"
TOKEN_B = "jm_token_shop_b_0123456789"

B_CUSTOMER = "8880001"
B_EMAIL = "beatrix@b-shop.example"
B_NAME = "Beatrix"
B_BALANCE = 7777
B_REFERRAL = "BEEC0DE9"
# What must never appear in an answer to shop A's credentials (lower-cased). The balance is
# matched as a whole number, so a figure that merely contains its digits (a latency sum of
# 0.0177771 on /metrics) is not mistaken for it, while 7777 and 7,777 still are.
B_MARKERS = {
    B_EMAIL: re.compile(re.escape(B_EMAIL)),
    B_NAME.lower(): re.compile(re.escape(B_NAME.lower())),
    str(B_BALANCE): re.compile(rf"(?<![\d.]){B_BALANCE // 1000},?{B_BALANCE % 1000:03d}(?!\d)"),
    B_REFERRAL.lower(): re.compile(re.escape(B_REFERRAL.lower())),
}

GENERIC_PREFIXES = {
    "/api/v1/": "api_key",
    "/proxy/": "app_proxy",
    "/woo/api/": "woo_token",
    "/admin/": "admin_page",
}
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/api/v1/openapi.json"),
    ("MOUNT", "/widgets/static"),
    ("MOUNT", "/admin/static"),
    ("GET", "/admin/login"),
    ("GET", "/metrics"),  # operators' figures: counts by route, never a shop's rows
}
# Path parameters the generic families know how to fill with B's ids.
B_PATH_IDS = ("customer_id", "referral_id", "code", "path", "subscription_id", "delivery_id")


def route_table(settings: Settings) -> list[tuple[str, str]]:
    """(method, path) for every route the app serves; a mount is ("MOUNT", prefix)."""
    table: list[tuple[str, str]] = []
    for route in create_app(settings).routes:
        if isinstance(route, Route):
            table.extend(
                (method, route.path) for method in sorted(route.methods or ()) if method != "HEAD"
            )
        elif isinstance(route, Mount):
            table.append(("MOUNT", route.path))
        else:
            table.append(("UNKNOWN", repr(route)))
    return table


ROUTES = route_table(get_settings())


def family(method: str, path: str) -> str | None:
    if (method, path) in PUBLIC:
        return "public"
    if (method, path) in ATTACKS:
        return "explicit"
    for prefix, name in GENERIC_PREFIXES.items():
        if path.startswith(prefix):
            return name
    return None


# --- the two shops ---------------------------------------------------------------------------


@dataclass
class World:
    """Ids only: the ORM objects expire when the suite's session rolls back."""

    b_id: int
    woo_a_id: int
    woo_b_id: int
    b_referral_id: int
    a_key: dict[str, str]
    settings: Settings
    state: State
    b_subscription_id: int = 0
    b_delivery_id: int = 0
    b_member_id: int = 0
    b_letter_id: int = 0


async def woo_shop(session: AsyncSession, settings: Settings, host: str, secret: str) -> Shop:
    cipher = Cipher.from_settings(settings)
    shop = Shop(
        platform=Platform.woocommerce,
        domain=host,
        name=host,
        currency="EUR",
        status=ShopStatus.installed,
        access_token_enc=cipher.encrypt(Credentials(woo.CONSUMER_KEY, woo.CONSUMER_SECRET).dumps()),
        webhook_secret_enc=cipher.encrypt(secret),
        installed_at=utcnow(),
    )
    session.add(shop)
    await session.commit()
    await ensure_default_program(session, shop)
    return shop


async def member_with_points(session: AsyncSession, shop: Shop, **values: Any) -> Member:
    member = await create_member(session, shop, **values)
    await ledger.post(
        session, shop.id, ledger.Posting(member.id, B_BALANCE, "earn", f"order:{shop.id}:earn")
    )
    await session.commit()
    return member


@pytest.fixture
async def world(session: AsyncSession, settings: Settings, state: State) -> World:
    """Shop A and shop B on Shopify (Judge.me connected), stores A and B on WooCommerce."""
    from app.db import unit_of_work
    from app.integrations.judgeme import service as judgeme_service

    a = await create_shop(session, settings, domain=SHOP_A)
    b = await create_shop(session, settings, domain=SHOP_B)
    for shop in (a, b):
        await ensure_default_program(session, shop)
    await session.commit()
    async with unit_of_work(state.sessionmaker) as uow:
        await judgeme_service.save_token(uow, state.cipher, a, TOKEN_A)
        await judgeme_service.save_token(uow, state.cipher, b, TOKEN_B)
    b_member = await member_with_points(
        session,
        b,
        customer_id=B_CUSTOMER,
        email=B_EMAIL,
        first_name=B_NAME,
        referral_code=B_REFERRAL,
        is_account=True,
    )
    friend = await create_member(session, b, customer_id="8880002", email="friend@b.example")
    referral = Referral(
        shop_id=b.id,
        referrer_member_id=b_member.id,
        friend_member_id=friend.id,
        order_id="9001",
        code=B_REFERRAL,
        method="link",
        status="held",
        order_amount=Decimal("50.00"),
        currency="USD",
        reward_points=100,
    )
    session.add(referral)
    await session.commit()
    woo_a = await woo_shop(session, settings, STORE_A, SECRET_A)
    woo_b = await woo_shop(session, settings, STORE_B, SECRET_B)
    await member_with_points(
        session, woo_b, customer_id="12", email=B_EMAIL, first_name=B_NAME, is_account=True
    )
    ids = World(b.id, woo_a.id, woo_b.id, referral.id, {}, settings, state)
    ids.a_key = await api_key_for(session, a)
    ids.b_subscription_id, ids.b_delivery_id = await b_outgoing_webhook(session, state, b.id)
    ids.b_member_id = b_member.id
    letter = DeadLetter(
        shop_id=b.id,
        source="shopify",
        topic="orders/paid",
        delivery_id="b-letter",
        headers={},
        body=orjson.dumps({"id": 1, "email": B_EMAIL}),
        error="kept for the tenancy suite",
    )
    session.add(letter)
    await session.commit()
    ids.b_letter_id = letter.id
    return ids


async def b_outgoing_webhook(session: AsyncSession, state: State, b_id: int) -> tuple[int, int]:
    """B's REST-hook subscription and one delivery of B's first member event."""
    subscription = WebhookSubscription(
        shop_id=b_id,
        url="https://hooks.b-shop.example/stamp",
        events=["points.earned"],
        secret_enc=state.cipher.encrypt("whsec_b"),
    )
    session.add(subscription)
    await session.flush()
    event_id = await session.scalar(
        select(MemberEvent.id).where(MemberEvent.shop_id == b_id).order_by(MemberEvent.id)
    )
    assert event_id is not None
    delivery = OutgoingDelivery(
        shop_id=b_id,
        subscription_id=subscription.id,
        member_event_id=event_id,
        event_type="points.earned",
    )
    session.add(delivery)
    await session.commit()
    return subscription.id, delivery.id


async def snapshot_of_b(session: AsyncSession, world: World) -> dict[str, list[Any]]:
    """Every row that is B's (its shop id) or points at one of B's members, as stored."""
    await session.rollback()
    b_shops = (world.b_id, world.woo_b_id)
    rows: dict[str, list[Any]] = {}
    member_ids = [
        row[0]
        for row in await session.execute(
            text("SELECT id FROM members WHERE shop_id IN (:b, :w)"),
            {"b": b_shops[0], "w": b_shops[1]},
        )
    ]
    for table in Base.metadata.sorted_tables:
        columns = table.columns.keys()
        conditions = []
        if table.name == "shops":
            conditions.append("id IN (:b, :w)")
        if "shop_id" in columns:
            conditions.append("shop_id IN (:b, :w)")
        for column in ("member_id", "referrer_member_id", "friend_member_id"):
            if column in columns and member_ids:
                conditions.append(f"{column} IN ({', '.join(str(i) for i in member_ids)})")
        if not conditions:
            continue
        result = await session.execute(
            text(f"SELECT * FROM {table.name} WHERE {' OR '.join(conditions)} ORDER BY 1"),
            {"b": b_shops[0], "w": b_shops[1]},
        )
        rows[table.name] = [tuple(str(value) for value in row) for row in result]
    return rows


def leaked(response: httpx.Response) -> list[str]:
    body = response.text.lower() + " " + response.headers.get("location", "").lower()
    return [marker for marker, pattern in B_MARKERS.items() if pattern.search(body)]


# --- how to attack each family --------------------------------------------------------------

Attack = Callable[[httpx.AsyncClient, World, str, str], Awaitable[list[httpx.Response]]]


def fill_path(path: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        path = path.replace("{" + name + "}", value).replace("{" + name + ":path}", value)
    assert "{" not in path, f"{path}: teach the tenancy suite which of B's ids fills it"
    return path


def b_ids(world: World) -> dict[str, str]:
    return {
        "customer_id": B_CUSTOMER,
        "referral_id": str(world.b_referral_id),
        "code": B_REFERRAL,
        "path": "state",
        "subscription_id": str(world.b_subscription_id),
        "delivery_id": str(world.b_delivery_id),
    }


def b_body() -> dict[str, Any]:
    """Every field a body might name B's things by, with values that validate."""
    return {
        "customer_id": B_CUSTOMER,
        "email": B_EMAIL,
        "reward_id": "amount-off",
        "points": 100,
        "reason": "tenancy",
        "idempotency_key": "tenancy-1",
        "event": "tenancy",
        "request_id": "tenancy-1",
        "confirm": True,
    }


API_DOCUMENT = build_document(_operations(), "tenancy")


def body_for(method: str, path: str) -> dict[str, Any]:
    """B-flavoured body; for an API operation only the fields its OpenAPI schema declares."""
    operation = API_DOCUMENT["paths"].get(path, {}).get(method.lower(), {})
    schema_ref = (
        operation.get("requestBody", {})
        .get("content", {})
        .get("application/json", {})
        .get("schema", {})
        .get("$ref")
    )
    if schema_ref is None:
        return b_body()
    declared = API_DOCUMENT["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    return {key: value for key, value in b_body().items() if key in declared["properties"]}


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    headers: dict[str, str] | None = None,
    path: str = "",
) -> httpx.Response:
    writes = method in {"POST", "PUT", "PATCH"}
    content = orjson.dumps(body_for(method, path)) if writes else None
    return await client.request(
        method,
        url,
        content=content,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


async def api_key_attack(
    client: httpx.AsyncClient, world: World, method: str, path: str
) -> list[httpx.Response]:
    query = urlencode({"customer_id": B_CUSTOMER, "email": B_EMAIL})
    url = f"{fill_path(path, b_ids(world))}?{query}"
    response = await send(client, method, url, world.a_key, path)
    if "{" in path:
        assert response.status_code == 404, (path, response.text)
    return [response]


def proxy_query(settings: Settings, customer_id: str) -> str:
    params = {
        "shop": SHOP_A,
        "logged_in_customer_id": customer_id,
        "path_prefix": "/apps/stamp",
        "timestamp": str(int(time.time())),
    }
    params["signature"] = app_proxy_signature(settings.shopify_api_secret, params.items())
    return urlencode(params)


async def app_proxy_attack(
    client: httpx.AsyncClient, world: World, method: str, path: str
) -> list[httpx.Response]:
    url = f"{fill_path(path, b_ids(world))}?{proxy_query(world.settings, B_CUSTOMER)}"
    return [await send(client, method, url)]


async def woo_token_attack(
    client: httpx.AsyncClient, world: World, method: str, path: str
) -> list[httpx.Response]:
    url = fill_path(path, b_ids(world))
    forged = mint_customer_token(world.woo_b_id, SECRET_A, "12", B_EMAIL, int(time.time()))
    response = await send(client, method, url, {"Authorization": f"Bearer {forged}"})
    if method != "OPTIONS":
        assert response.status_code == 401, (path, response.text)
    own = mint_customer_token(world.woo_a_id, SECRET_A, "12", B_EMAIL, int(time.time()))
    return [response, await send(client, method, url, {"Authorization": f"Bearer {own}"})]


async def shopify_webhook_attack(
    client: httpx.AsyncClient, world: World, method: str, path: str
) -> list[httpx.Response]:
    """Shopify signs for the app; the header names the shop. A's order naming B's customer."""
    order = orjson.loads(SHOPIFY_ORDER.read_bytes())
    order["customer"]["id"] = int(B_CUSTOMER)
    order["customer"]["email"] = B_EMAIL
    order["email"] = B_EMAIL
    body, headers = shopify_webhook(world.settings, "orders/paid", order, shop=SHOP_A)
    return [await client.post(path, content=body, headers=headers)]


async def woo_webhook_attack(
    client: httpx.AsyncClient, world: World, method: str, path: str
) -> list[httpx.Response]:
    body, headers = woo.signed(
        woo.order(customer_id=12, email=B_EMAIL), "order.created", secret=SECRET_A
    )
    response = await client.post(
        fill_path(path, {"shop_id": str(world.woo_b_id)}), content=body, headers=headers
    )
    assert response.status_code == 401, response.text
    return [response]


async def segment_webhook_attack(
    client: httpx.AsyncClient, world: World, method: str, path: str
) -> list[httpx.Response]:
    """A track event for shop B's Segment URL, signed with a secret that is not B's."""
    body = orjson.dumps(
        {"type": "track", "event": "Order Completed", "userId": "1", "messageId": "m-1"}
    )
    digest = hmac.new(TOKEN_A.encode(), body, hashlib.sha1).hexdigest()
    response = await client.post(
        fill_path(path, {"shop_id": str(world.b_id)}),
        content=body,
        headers={"Content-Type": "application/json", "X-Signature": digest},
    )
    assert response.status_code == 401, response.text
    return [response]


async def enrol_attack(
    client: httpx.AsyncClient, world: World, method: str, path: str
) -> list[httpx.Response]:
    """A enrols B's customer id (ids are per shop): A gets a new member of its own, and
    nothing of B's member (email, name, balance, code) comes back."""
    response = await client.post(
        path,
        json={"customer_id": B_CUSTOMER, "email": "a-contact@a-shop.example"},
        headers=world.a_key,
    )
    assert response.status_code == 201, response.text
    assert response.json()["referral_url"].startswith(f"https://{SHOP_A}/")
    return [response]


async def judgeme_webhook_attack(
    client: httpx.AsyncClient, world: World, method: str, path: str
) -> list[httpx.Response]:
    body = orjson.dumps(
        {
            "review": judgeme.review(email=B_EMAIL),
            "event": "review/published",
            "shop_domain": SHOP_B,
            "platform": "shopify",
        }
    )
    digest = hmac.new(TOKEN_A.encode(), body, hashlib.sha256).hexdigest()
    response = await client.post(path, content=body, headers={"JUDGEME-HMAC-SHA256": digest})
    assert response.status_code == 401, response.text
    return [response]


async def admin_attack(
    client: httpx.AsyncClient, world: World, method: str, path: str
) -> list[httpx.Response]:
    """A's session token on a load that names shop B."""
    token = session_token(world.settings, SHOP_A)
    response = await client.get(path, params={"shop": SHOP_B, "id_token": token})
    assert response.status_code == 401, response.text
    return [response]


async def bounce_attack(
    client: httpx.AsyncClient, world: World, method: str, path: str
) -> list[httpx.Response]:
    """The bounce page only loads App Bridge; it holds nothing of the shop it names."""
    reload_url = world.settings.external_url("/admin?shop=" + SHOP_B)
    return [await client.get(path, params={"shop": SHOP_B, "shopify-reload": reload_url})]


async def install_start_attack(
    client: httpx.AsyncClient, world: World, method: str, path: str
) -> list[httpx.Response]:
    """Anyone may start an install for any shop; it only leads to Shopify's consent screen."""
    return [await client.get(path, params={"shop": SHOP_B})]


async def install_callback_attack(
    client: httpx.AsyncClient, world: World, method: str, path: str
) -> list[httpx.Response]:
    """A state Stamp issued for shop A, on a (Shopify-signed) callback for shop B."""
    state = sign_shopify_state(world.settings, "nonce-for-a", SHOP_A)
    response = await client.get(path, params=callback_query(world.settings, state, shop=SHOP_B))
    assert response.status_code == 400, response.text
    return [response]


async def woo_connect_start_attack(
    client: httpx.AsyncClient, world: World, method: str, path: str
) -> list[httpx.Response]:
    """Starting a connect names a store URL; a private one is refused before any lookup."""
    return [await client.get(path, params={"store_url": "https://127.0.0.1"})]


async def woo_callback_attack(
    client: httpx.AsyncClient, world: World, method: str, path: str
) -> list[httpx.Response]:
    """Keys posted for store B under a state Stamp signed but never issued for B."""
    state = sign_woo_state(world.settings, "nonce-never-issued", f"https://{STORE_B}")
    body = {
        "key_id": 1,
        "user_id": state,
        "consumer_key": "ck_" + "a" * 40,
        "consumer_secret": "cs_" + "b" * 40,
        "key_permissions": "read_write",
    }
    response = await client.post(path, json=body)
    assert response.status_code == 401, response.text
    return [response]


async def woo_return_attack(
    client: httpx.AsyncClient, world: World, method: str, path: str
) -> list[httpx.Response]:
    response = await client.get(path, params={"user_id": "not-a-state", "success": "1"})
    assert response.status_code == 400, response.text
    return [response]


ATTACKS: dict[tuple[str, str], Attack] = {
    ("POST", "/webhooks/shopify"): shopify_webhook_attack,
    ("POST", "/webhooks/woocommerce/{shop_id}"): woo_webhook_attack,
    ("POST", "/webhooks/judgeme"): judgeme_webhook_attack,
    ("POST", "/webhooks/segment/{shop_id}"): segment_webhook_attack,
    ("POST", "/api/v1/members"): enrol_attack,
    ("GET", "/"): admin_attack,
    ("GET", "/admin"): admin_attack,
    ("GET", "/auth/session-token"): bounce_attack,
    ("GET", "/auth/shopify"): install_start_attack,
    ("GET", "/auth/shopify/callback"): install_callback_attack,
    ("GET", "/woocommerce/connect"): woo_connect_start_attack,
    ("POST", "/woocommerce/callback"): woo_callback_attack,
    ("GET", "/woocommerce/return"): woo_return_attack,
}


async def admin_page_attack(
    client: httpx.AsyncClient, world: World, method: str, path: str
) -> list[httpx.Response]:
    """A's App Bridge session token on every admin page and action, with B's ids."""
    ids = {
        "member_id": str(world.b_member_id),
        "referral_id": str(world.b_referral_id),
        "letter_id": str(world.b_letter_id),
        "decision:str": "approve",
        "decision": "approve",
        "table": "members",
        "kind": "klaviyo",
        "subscription_id": str(world.b_subscription_id),
        "delivery_id": str(world.b_delivery_id),
    }
    # A search for part of B's email: echoed back as typed, but B's member must not match.
    url = fill_path(path, ids) + "?" + urlencode({"q": "b-shop.example", "customer_id": B_CUSTOMER})
    headers = {"Authorization": f"Bearer {session_token(world.settings, SHOP_A)}"}
    response = await send(client, method, url, headers, path)
    b_path_ids = ("{member_id}", "{referral_id}", "{letter_id}", "{subscription_id}")
    if any(name in path for name in b_path_ids):
        assert response.status_code == 404, (path, response.status_code, response.text[:300])
    return [response]


GENERIC: dict[str, Attack] = {
    "api_key": api_key_attack,
    "app_proxy": app_proxy_attack,
    "woo_token": woo_token_attack,
    "admin_page": admin_page_attack,
}


async def public_attack(
    client: httpx.AsyncClient, world: World, method: str, path: str
) -> list[httpx.Response]:
    url = path + "/stamp-loader.js" if path == "/widgets/static" else path
    return [await client.get(url)]


# --- the tests -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "found"),
    [
        ('{"balance": 7777}', ["7777"]),
        ("<td>7,777 points</td>", ["7777"]),
        ("balance 7777.00", ["7777"]),
        ('stamp_http_request_seconds_sum{route="/metrics"} 0.0177771', []),
        ("order 177770", []),
        ("Hello BEATRIX", ["beatrix"]),
    ],
)
def test_leak_check_matches_b_balance_as_a_number_not_as_digits(
    body: str, found: list[str]
) -> None:
    assert leaked(httpx.Response(200, text=body)) == found


def test_every_route_is_classified() -> None:
    unclassified = [(method, path) for method, path in ROUTES if family(method, path) is None]

    assert unclassified == [], "add these to the tenancy suite (ATTACKS or PUBLIC)"


def test_every_listed_attack_is_for_a_route_that_exists() -> None:
    stale = [route for route in (*ATTACKS, *PUBLIC) if route not in ROUTES]

    assert stale == []


@pytest.fixture
def platforms() -> Any:
    """Shopify's Admin API for shop A (redemptions issue codes); nothing else leaves."""
    with respx.mock(assert_all_called=False) as router:
        router.post(f"https://{SHOP_A}/admin/api/2026-07/graphql.json").respond(200, json=CREATED)
        router.route(host="stamp.test").pass_through()
        yield router


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
async def test_shop_a_credentials_reach_nothing_of_shop_b(
    method: str,
    path: str,
    client: httpx.AsyncClient,
    session: AsyncSession,
    world: World,
    platforms: Any,
) -> None:
    kind = family(method, path)
    assert kind is not None, f"{method} {path} is not classified"
    attack = (
        public_attack
        if kind == "public"
        else ATTACKS[(method, path)]
        if kind == "explicit"
        else GENERIC[kind]
    )
    before = await snapshot_of_b(session, world)

    responses = await attack(client, world, method, path)

    for response in responses:
        assert response.status_code < 500, response.text
        assert leaked(response) == [], (response.status_code, response.text[:500])
    assert await snapshot_of_b(session, world) == before


async def test_the_leak_detector_sees_b_when_b_itself_asks(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    """A control: the markers are really in B's answers, so their absence above means something."""
    shop_b = await session.get(Shop, world.b_id)
    assert shop_b is not None
    b_key = await api_key_for(session, shop_b)

    response = await client.get(f"/api/v1/members/{B_CUSTOMER}", headers=b_key)

    assert response.status_code == 200
    assert leaked(response) == list(B_MARKERS)
