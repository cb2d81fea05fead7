"""A shop's Admin API access token: obtained from Shopify, stored encrypted, kept fresh.

Expiring offline tokens live 60 minutes and come with a 90-day refresh token; every
refresh returns a new pair, which replaces the old one in a single UPDATE. Call
`access_token(state, session, shop)` before every Admin API call; it refreshes when the
token has less than five minutes left.

The refresh is written through the caller's session, so it commits with the caller's unit
of work (on SQLite a second writer would wait on the caller's lock). Should that unit of
work roll back, the stored previous refresh token still works: Shopify accepts it again
until the replacement is first used.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import AppError
from app.models import Shop
from app.models.base import utcnow
from app.shops.repository import ShopRepository
from app.shops.schemas import TokenGrant
from app.state import State

REFRESH_MARGIN = timedelta(minutes=5)


class ShopTokenError(AppError):
    """No usable Admin API token. `retryable` tells a job whether trying later can help."""

    status_code = 502
    code = "shop_token_unavailable"
    retryable = False


class ShopifyUnavailable(ShopTokenError):
    """Shopify answered 5xx or 429, or could not be reached: worth retrying later."""

    status_code = 503
    code = "shopify_unavailable"
    retryable = True


class TokenRequestRejected(ShopTokenError):
    """Shopify refused a token request with a 4xx: retrying the same request cannot help."""

    code = "shopify_token_rejected"

    def __init__(self, message: str, *, shopify_status: int) -> None:
        super().__init__(message)
        self.shopify_status = shopify_status


class ReauthorizationRequired(ShopTokenError):
    """The refresh token is gone, expired or revoked: only a new install/launch fixes it."""

    status_code = 409
    code = "shop_reauthorization_required"


async def request_token(state: State, shop_domain: str, grant: dict[str, str]) -> TokenGrant:
    """POST one grant (code, token exchange, refresh) to the shop's token endpoint."""
    settings = state.settings
    url = f"{settings.shopify_admin_base(shop_domain)}/admin/oauth/access_token"
    body = {
        "client_id": settings.shopify_api_key,
        "client_secret": settings.shopify_api_secret,
        **grant,
    }
    try:
        response = await state.http.post(url, json=body, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise ShopifyUnavailable(
            f"Could not reach Shopify for {shop_domain} ({type(exc).__name__}); try again"
        ) from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise ShopifyUnavailable(
            f"Shopify answered {response.status_code} to the token request for {shop_domain}; "
            "try again"
        )
    if not response.is_success:
        raise TokenRequestRejected(
            f"Shopify refused the token request for {shop_domain} with "
            f"{response.status_code}: {_error_text(response)}",
            shopify_status=response.status_code,
        )
    try:
        return TokenGrant.model_validate_json(response.content)
    except ValidationError as exc:
        raise ShopTokenError(
            f"Shopify's token response for {shop_domain} had no usable access token"
        ) from exc


def expiry(now: datetime, seconds: int | None) -> datetime | None:
    return now + timedelta(seconds=seconds) if seconds is not None else None


async def store_grant(
    state: State, session: AsyncSession, shop: Shop, grant: TokenGrant, now: datetime
) -> None:
    """Encrypt and store a fresh pair (a grant without refresh token clears the old one)."""
    await ShopRepository(session).store_tokens(
        shop,
        access_token_enc=state.cipher.encrypt(grant.access_token),
        access_token_expires_at=expiry(now, grant.expires_in),
        refresh_token_enc=(
            state.cipher.encrypt(grant.refresh_token) if grant.refresh_token else None
        ),
        refresh_token_expires_at=(
            expiry(now, grant.refresh_token_expires_in) if grant.refresh_token else None
        ),
    )


def needs_refresh(shop: Shop, now: datetime) -> bool:
    expires_at = shop.access_token_expires_at
    return expires_at is not None and expires_at - now <= REFRESH_MARGIN


def has_usable_token(shop: Shop, now: datetime) -> bool:
    """True when `access_token` can hand out a token without the merchant's help."""
    if shop.access_token_enc is None:
        return False
    if not needs_refresh(shop, now):
        return True
    return _refresh_token_alive(shop, now)


def _refresh_token_alive(shop: Shop, now: datetime) -> bool:
    if shop.refresh_token_enc is None:
        return False
    expires_at = shop.refresh_token_expires_at
    return expires_at is None or expires_at > now


async def access_token(state: State, session: AsyncSession, shop: Shop) -> str:
    """The shop's decrypted Admin API token, refreshed first when it expires within 5 minutes.

    `shop` should belong to `session`. Raises `ReauthorizationRequired` (final) when the
    refresh token is missing, expired or refused, and `ShopifyUnavailable` (retryable) on
    5xx, 429 and network errors.
    """
    now = utcnow()
    if shop.access_token_enc is None:
        raise ReauthorizationRequired(f"{shop.domain} has no access token; it must be reinstalled")
    if not needs_refresh(shop, now):
        return state.cipher.decrypt(shop.access_token_enc)
    locked = await ShopRepository(session).lock(shop.id)
    if locked is None:
        raise ReauthorizationRequired(f"{shop.domain} no longer exists")
    if locked.access_token_enc is not None and not needs_refresh(locked, now):
        return state.cipher.decrypt(locked.access_token_enc)  # refreshed meanwhile by another
    if locked.refresh_token_enc is None or not _refresh_token_alive(locked, now):
        raise ReauthorizationRequired(
            f"The access token of {shop.domain} expired and there is no live refresh token; "
            "the merchant must open Stamp again to reauthorize it"
        )
    grant = await _refresh(state, locked.domain, state.cipher.decrypt(locked.refresh_token_enc))
    await store_grant(state, session, locked, grant, now)
    return grant.access_token


async def _refresh(state: State, shop_domain: str, refresh_token: str) -> TokenGrant:
    try:
        return await request_token(
            state,
            shop_domain,
            {"grant_type": "refresh_token", "refresh_token": refresh_token},
        )
    except TokenRequestRejected as exc:
        raise ReauthorizationRequired(
            f"Shopify refused to refresh the token of {shop_domain} "
            f"({exc.shopify_status}); the merchant must open Stamp again to reauthorize it"
        ) from exc


def _error_text(response: httpx.Response) -> str:
    """Shopify's own error words, short, for the message the merchant or operator sees."""
    try:
        payload: Any = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(payload, dict):
        for key in ("error_description", "error", "errors"):
            if payload.get(key):
                return str(payload[key])[:200]
    return str(payload)[:200]
