"""Connecting a WooCommerce store through its `/wc-auth/v1/authorize` endpoint.

WooCommerce POSTs the new consumer key and secret to our callback without any signature,
so the only tie to a pending connect is the `user_id` we chose: a signed, 10-minute,
single-use state whose nonce lives in `oauth_states` and is deleted by the callback. The
keys are then proved with one REST call before anything is stored, and Stamp's webhooks
are created with a fresh per-shop secret. Every refusal happens before a write, or inside
the caller's unit of work so its rollback undoes it (and WooCommerce, seeing a non-200,
deletes the key it just made).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import AppError, Unauthorized
from app.http import check_public_url
from app.integrations.woocommerce.client import (
    Credentials,
    WooError,
    client_for,
    domain_of,
    normalise_store_url,
)
from app.integrations.woocommerce.subscriptions import ensure_webhooks
from app.models import Platform, Shop, ShopStatus
from app.models.base import utcnow
from app.program.service import ensure_default_program
from app.settings import Settings
from app.shops.repository import ShopRepository
from app.state import State

STATE_SALT = "woocommerce-connect-state"
STATE_MAX_AGE_SECONDS = 600
APP_NAME = "Stamp"
SCOPE = "read_write"
CALLBACK_PATH = "/woocommerce/callback"
RETURN_PATH = "/woocommerce/return"
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class CallbackIn(BaseModel):
    """What WooCommerce's `WC_Auth::post_consumer_data` sends."""

    key_id: int | None = None
    user_id: str = Field(min_length=1, max_length=2000)
    consumer_key: str = Field(pattern=r"^ck_[A-Za-z0-9]{10,100}$")
    consumer_secret: str = Field(pattern=r"^cs_[A-Za-z0-9]{10,100}$")
    key_permissions: str


class StateRefused(Unauthorized):
    code = "invalid_state"


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key, salt=STATE_SALT)


def sign_state(settings: Settings, nonce: str, store_url: str) -> str:
    return _serializer(settings).dumps({"nonce": nonce, "store": store_url})


def read_state(
    settings: Settings, value: str | None, max_age: int = STATE_MAX_AGE_SECONDS
) -> tuple[str, str]:
    """(nonce, store URL) from a state Stamp signed within `max_age` seconds; 401 otherwise."""
    try:
        payload: Any = _serializer(settings).loads(value or "", max_age=max_age)
    except SignatureExpired as exc:
        raise StateRefused("The connect request expired; start again") from exc
    except BadSignature as exc:
        raise StateRefused("The connect state was not issued by Stamp") from exc
    if not (
        isinstance(payload, dict)
        and isinstance(payload.get("nonce"), str)
        and isinstance(payload.get("store"), str)
    ):
        raise StateRefused("The connect state was not issued by Stamp")
    return payload["nonce"], payload["store"]


def authorize_url(settings: Settings, store_url: str, state: str) -> str:
    query = urlencode(
        {
            "app_name": APP_NAME,
            "scope": SCOPE,
            "user_id": state,
            "return_url": settings.external_url(RETURN_PATH),
            "callback_url": settings.external_url(CALLBACK_PATH),
        }
    )
    return f"{store_url}/wc-auth/v1/authorize?{query}"


async def begin_connect(settings: Settings, session: AsyncSession, store_url: str | None) -> str:
    """Check the store URL (https, public address), record a nonce, return where to go."""
    url = normalise_store_url(store_url)
    check_public_url(url, settings)
    nonce = secrets.token_hex(32)
    await ShopRepository(session).add_oauth_state(nonce, domain_of(url))
    return authorize_url(settings, url, sign_state(settings, nonce, url))


def new_webhook_secret() -> str:
    """Alphanumeric: WooCommerce HTML-decodes secrets, so `& < > " '` would change them."""
    return secrets.token_hex(24)


async def _store_currency(state: State, store_url: str, credentials: Credentials) -> str | None:
    """The one REST call that proves the keys work (and tells the shop's currency)."""
    client = client_for(state, store_url, credentials)
    try:
        settings = await client.get("/settings/general")
    except WooError as exc:
        raise AppError(
            f"The store refused the new keys: {exc}", code="keys_rejected", status_code=401
        ) from exc
    except httpx.HTTPError as exc:
        raise AppError(
            f"The store could not be reached: {type(exc).__name__}",
            code="store_unreachable",
            status_code=502,
        ) from exc
    if isinstance(settings, list):
        for item in settings:
            if isinstance(item, dict) and item.get("id") == "woocommerce_currency":
                value = str(item.get("value") or "").upper()
                return value if _CURRENCY.match(value) else None
    return None


@dataclass(frozen=True, slots=True)
class Connected:
    shop: Shop
    webhooks_created: tuple[str, ...]


async def complete_connect(state: State, session: AsyncSession, callback: CallbackIn) -> Connected:
    """Use the state, prove and store the keys, create the webhooks, in the caller's transaction."""
    nonce, store_url = read_state(state.settings, callback.user_id)
    repository = ShopRepository(session)
    if not await repository.consume_oauth_state(nonce, domain_of(store_url)):
        raise StateRefused("This connect state was already used")
    if callback.key_permissions != SCOPE:
        raise AppError(
            f"Stamp needs {SCOPE} access, got {callback.key_permissions!r}", code="scope_missing"
        )
    credentials = Credentials(callback.consumer_key, callback.consumer_secret)
    currency = await _store_currency(state, store_url, credentials)

    shop = await repository.get_or_create_by_domain(domain_of(store_url), Platform.woocommerce)
    secret = new_webhook_secret()
    shop.access_token_enc = state.cipher.encrypt(credentials.dumps())
    shop.webhook_secret_enc = state.cipher.encrypt(secret)
    shop.platform_shop_id = str(callback.key_id) if callback.key_id is not None else None
    shop.scopes = SCOPE
    shop.name = shop.name or domain_of(store_url)
    if currency:
        shop.currency = currency
    shop.status = ShopStatus.installed
    shop.installed_at = utcnow()
    shop.uninstalled_at = None
    await session.flush()
    await ensure_default_program(session, shop)
    client = client_for(state, store_url, credentials)
    try:
        sync = await ensure_webhooks(client, state.settings, shop.id, secret)
    except (WooError, httpx.HTTPError) as exc:
        raise AppError(
            f"Stamp could not create its webhooks: {exc}", code="webhooks_failed", status_code=502
        ) from exc
    return Connected(shop, sync.created)
