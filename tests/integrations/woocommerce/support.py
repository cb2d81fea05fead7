"""Shared WooCommerce test data: a connected store, realistic REST v3 orders, signed bodies."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import uuid
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.routing import Route

from app.crypto import Cipher
from app.integrations.woocommerce.client import Credentials
from app.models import Platform, Shop, ShopStatus
from app.models.base import utcnow
from app.settings import Settings

STORE_HOST = "shop.example-store.com"
STORE = f"https://{STORE_HOST}"
API = f"{STORE}/wp-json/wc/v3"
WEBHOOK_SECRET = "9f0c2b7e4d1a8c3f6e5b2a9d7c4e1f0a3b6c9d2e5f8a1b4c"
CONSUMER_KEY = "ck_4f8e2c1a9b7d6e5f3a2b1c0d9e8f7a6b5c4d3e2f"
CONSUMER_SECRET = "cs_1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
FIXTURES = Path(__file__).resolve().parents[2] / "webhooks" / "woocommerce" / "fixtures"


def wire(application: Starlette) -> Starlette:
    """Add the WooCommerce routes the lead wires into `app.main` (idempotent)."""
    from app.integrations.woocommerce.routes import routes
    from webhooks.woocommerce.receiver import receive

    paths = {getattr(route, "path", None) for route in application.router.routes}
    if "/webhooks/woocommerce/{shop_id}" not in paths:
        application.router.routes.insert(
            0, Route("/webhooks/woocommerce/{shop_id}", receive, methods=["POST"])
        )
    if "/woocommerce/connect" not in paths:
        application.router.routes[0:0] = routes
    return application


async def create_woo_shop(
    session: AsyncSession,
    settings: Settings,
    *,
    secret: str = WEBHOOK_SECRET,
    status: str = ShopStatus.installed,
) -> Shop:
    cipher = Cipher.from_settings(settings)
    shop = Shop(
        platform=Platform.woocommerce,
        domain=STORE_HOST,
        name="Example Store",
        currency="EUR",
        status=status,
        access_token_enc=cipher.encrypt(Credentials(CONSUMER_KEY, CONSUMER_SECRET).dumps()),
        webhook_secret_enc=cipher.encrypt(secret),
        installed_at=utcnow(),
    )
    session.add(shop)
    await session.commit()
    session.expunge(shop)  # detached: a test's rollback never expires it
    return shop


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def order(
    *,
    order_id: int = 727,
    status: str = "processing",
    customer_id: int = 12,
    email: str = "Jo.Buyer@Example.com",
    refunds: list[dict[str, Any]] | None = None,
    modified: str = "2026-03-02T10:15:00",
) -> dict[str, Any]:
    """The fixture order (merchandise 72.00 EUR), with the given state."""
    payload = copy.deepcopy(load("order"))
    payload.update(id=order_id, number=str(order_id), status=status, customer_id=customer_id)
    payload["billing"]["email"] = email
    payload["refunds"] = refunds or []
    payload["date_modified_gmt"] = modified
    if status in {"pending", "failed", "on-hold"}:
        payload["date_paid"] = payload["date_paid_gmt"] = None
    return payload


def signed(
    payload: Any, topic: str, *, secret: str = WEBHOOK_SECRET, delivery_id: str | None = None
) -> tuple[bytes, dict[str, str]]:
    """A body and headers exactly as `WC_Webhook::deliver` sends them."""
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    resource, _, event = topic.partition(".")
    return body, {
        "Content-Type": "application/json",
        "User-Agent": "WooCommerce/9.8.1 Hookshot (WordPress/6.8)",
        "X-WC-Webhook-Source": f"{STORE}/",
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-Signature": base64.b64encode(digest).decode(),
        "X-WC-Webhook-ID": "31",
        "X-WC-Webhook-Delivery-ID": delivery_id or uuid.uuid4().hex,
    }
