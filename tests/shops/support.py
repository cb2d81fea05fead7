"""Helpers for install and admin tests: a Shopify stand-in at the HTTP boundary, signed
launch/callback queries, session tokens, and row counts read outside the test session."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import respx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.admin.auth import require_shop
from app.integrations.shopify import signing
from app.settings import Settings
from app.state import State
from tests.builders import row_counts

SHOP = "some-shop.myshopify.com"
TOKEN_PATH = "/admin/oauth/access_token"
ACCESS_TOKEN = "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"
REFRESH_TOKEN = "shprt_9a8b7c6d5e4f30211203f4e5d6c7b8a9"
GRANTED_SCOPES = "read_customers,write_customers,read_orders,write_discounts,write_app_proxy"
WHOAMI = "/admin/api/test-whoami"
SHOP_INFO = {
    "name": "Some Shop",
    "email": "owner@some-shop.example",
    "currencyCode": "JPY",
    "ianaTimezone": "Asia/Tokyo",
    "myshopifyDomain": SHOP,
    "id": "gid://shopify/Shop/548380009",
}


async def whoami(request: Request) -> Response:
    """A stand-in admin API endpoint guarded by `require_shop`."""
    shop = await require_shop(request)
    return JSONResponse({"shop": shop.domain, "name": shop.name})


def grant(
    access_token: str = ACCESS_TOKEN,
    refresh_token: str = REFRESH_TOKEN,
    scope: str = GRANTED_SCOPES,
) -> dict[str, Any]:
    return {
        "access_token": access_token,
        "scope": scope,
        "expires_in": 3600,
        "refresh_token": refresh_token,
        "refresh_token_expires_in": 7776000,
    }


def mock_shopify(router: respx.MockRouter, settings: Settings, shop: str = SHOP) -> None:
    """Shopify answering a token request with a fresh pair and the shop query with SHOP_INFO."""
    admin = settings.shopify_admin_base(shop)
    router.post(f"{admin}{TOKEN_PATH}", name="token").mock(
        return_value=httpx.Response(200, json=grant())
    )
    router.post(
        f"{admin}/admin/api/{settings.SHOPIFY_API_VERSION}/graphql.json", name="graphql"
    ).mock(return_value=httpx.Response(200, json={"data": {"shop": SHOP_INFO}}))


def signed(settings: Settings, params: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The query with the hmac Shopify would append."""
    items = list(params)
    return [*items, ("hmac", signing.oauth_hmac(settings.shopify_api_secret, items))]


def callback_query(
    settings: Settings,
    state: str,
    *,
    shop: str = SHOP,
    code: str = "0907a61c0c8d55e99db179b68161bc00",
    timestamp: int | None = None,
    host: str | None = None,
) -> list[tuple[str, str]]:
    params = [
        ("code", code),
        ("shop", shop),
        ("state", state),
        ("timestamp", str(int(time.time()) if timestamp is None else timestamp)),
    ]
    if host is not None:
        params.append(("host", host))
    return signed(settings, params)


def encode_host(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def session_token(
    settings: Settings,
    shop: str = SHOP,
    *,
    secret: str | None = None,
    issued_at: int | None = None,
    lifetime: int = 60,
) -> str:
    """An App Bridge session token as Shopify mints it (HS256 with the app secret)."""
    now = int(time.time()) if issued_at is None else issued_at
    claims = {
        "iss": f"https://{shop}/admin",
        "dest": f"https://{shop}",
        "aud": settings.shopify_api_key,
        "sub": "42",
        "exp": now + lifetime,
        "nbf": now,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "sid": "f7c1a2b3",
    }
    return jwt.encode(claims, secret or settings.shopify_api_secret, algorithm="HS256")


def embedded_query(settings: Settings, id_token: str, shop: str = SHOP) -> list[tuple[str, str]]:
    """The signed query of an embedded document load from the Shopify admin."""
    return signed(
        settings,
        [
            ("embedded", "1"),
            ("host", encode_host(f"admin.shopify.com/store/{shop.split('.')[0]}")),
            ("id_token", id_token),
            ("locale", "en"),
            ("session", "a1b2c3"),
            ("shop", shop),
            ("timestamp", str(int(time.time()))),
        ],
    )


async def begin_install(client: httpx.AsyncClient, shop: str = SHOP) -> str:
    """Start an install the way a merchant does and return the `state` Shopify will echo."""
    response = await client.get("/auth/shopify", params={"shop": shop})
    assert response.status_code == 302
    return query_of(response.headers["location"])["state"]


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


async def counts(state: State) -> dict[str, int]:
    """Rows per table, read in a short session so no lock outlives the check (SQLite)."""
    async with state.sessionmaker() as session:
        return await row_counts(session)
