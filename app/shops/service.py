"""Installing Stamp on a Shopify shop: the authorization-code grant and token exchange.

Both flows end in `_activate`: check the granted scopes, read the shop's name, currency
and timezone, store the encrypted token pair, mark the shop installed and give it its
default program, all inside the caller's unit of work. Every refusal happens before
anything is written, or inside that unit of work so the rollback undoes it.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import AppError, Forbidden, Unauthorized
from app.integrations.shopify import signing
from app.models import Shop, ShopStatus
from app.models.base import utcnow
from app.program.service import ensure_default_program
from app.queue import enqueue
from app.settings import Settings
from app.shops import tokens
from app.shops.repository import ShopRepository
from app.shops.schemas import ShopInfo, TokenGrant, VerifiedCallback, parse_scopes
from app.state import State

Params = Sequence[tuple[str, str]]

OAUTH_STATE_SALT = "shopify-oauth-state"
OAUTH_STATE_MAX_AGE_SECONDS = 600
CALLBACK_MAX_AGE = timedelta(hours=24)
CALLBACK_MAX_FUTURE = timedelta(minutes=5)
CALLBACK_PATH = "/auth/shopify/callback"
SHOPIFY_ADMIN_HOST = "admin.shopify.com"
MYSHOPIFY_SUFFIX = ".myshopify.com"
SHOP_INFO_QUERY = "{ shop { name email currencyCode ianaTimezone myshopifyDomain id } }"
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
OFFLINE_TOKEN_TYPE = "urn:shopify:params:oauth:token-type:offline-access-token"
_STORE_HANDLE_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]*$")


def shop_domain(value: str | None) -> str:
    """The shop's `*.myshopify.com` domain, lower-cased, or a 400 naming the rule."""
    if not signing.is_valid_shop_domain(value):
        raise AppError(
            "The shop must be a domain like your-store.myshopify.com",
            code="invalid_shop_domain",
        )
    assert value is not None
    return value.lower()


def verify_hmac(settings: Settings, params: Params) -> None:
    """Refuse a launch or callback query that Shopify did not sign with our secret."""
    if not signing.verify_oauth(settings.shopify_api_secret, params):
        raise Unauthorized(
            "The request's hmac does not match; it did not come from Shopify",
            code="invalid_hmac",
        )


def check_timestamp(value: str | None, now: datetime) -> None:
    """design.md "Timestamps": older than 24 h or more than 5 minutes ahead is refused."""
    try:
        sent = datetime.fromtimestamp(int(value or ""), tz=UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise AppError("The request has no valid timestamp", code="invalid_timestamp") from exc
    if now - sent > CALLBACK_MAX_AGE:
        raise AppError(
            "The request is more than 24 hours old; start the install again",
            code="stale_request",
        )
    if sent - now > CALLBACK_MAX_FUTURE:
        raise AppError(
            "The request's timestamp is more than 5 minutes in the future",
            code="timestamp_in_future",
        )


def _state_serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key, salt=OAUTH_STATE_SALT)


def sign_state(settings: Settings, nonce: str, shop: str) -> str:
    """The OAuth `state`: the nonce and its shop, signed so a callback can check both offline."""
    return _state_serializer(settings).dumps({"nonce": nonce, "shop": shop})


def read_state(settings: Settings, state: str | None) -> tuple[str, str]:
    """(nonce, shop) from a state we signed within the last 10 minutes, else a 400."""
    try:
        payload = _state_serializer(settings).loads(
            state or "", max_age=OAUTH_STATE_MAX_AGE_SECONDS
        )
    except SignatureExpired as exc:
        raise AppError(
            "The install link expired (10 minutes); start the install again",
            code="state_expired",
        ) from exc
    except BadSignature as exc:
        raise AppError("The OAuth state was not issued by Stamp", code="invalid_state") from exc
    if not (
        isinstance(payload, dict)
        and isinstance(payload.get("nonce"), str)
        and isinstance(payload.get("shop"), str)
    ):
        raise AppError("The OAuth state was not issued by Stamp", code="invalid_state")
    return payload["nonce"], payload["shop"]


def authorize_url(settings: Settings, shop: str, state: str) -> str:
    query = urlencode(
        {
            "client_id": settings.shopify_api_key,
            "scope": settings.SHOPIFY_SCOPES,
            "redirect_uri": settings.external_url(CALLBACK_PATH),
            "state": state,
        }
    )
    return f"{settings.shopify_admin_base(shop)}/admin/oauth/authorize?{query}"


async def begin_install(settings: Settings, session: AsyncSession, shop: str) -> str:
    """Record a single-use nonce for `shop` and return Shopify's authorize URL carrying it."""
    repository = ShopRepository(session)
    now = utcnow()
    await repository.purge_oauth_states(now - timedelta(days=1))
    nonce = secrets.token_hex(32)
    await repository.add_oauth_state(nonce, shop)
    return authorize_url(settings, shop, sign_state(settings, nonce, shop))


def verify_callback(settings: Settings, params: Params, now: datetime) -> VerifiedCallback:
    """Every check on the callback that needs no database, in the order that matters.

    hmac first (nothing unsigned is looked at further), then shop, timestamp, the state's
    signature and age, and that the state was issued for this very shop.
    """
    verify_hmac(settings, params)
    query = dict(params)
    shop = shop_domain(query.get("shop"))
    check_timestamp(query.get("timestamp"), now)
    nonce, state_shop = read_state(settings, query.get("state"))
    if state_shop != shop:
        raise AppError("The OAuth state was issued for another shop", code="state_shop_mismatch")
    code = query.get("code")
    if not code:
        raise AppError("The callback has no authorization code", code="missing_code")
    return VerifiedCallback(shop=shop, code=code, nonce=nonce, host=query.get("host"))


async def complete_install(state: State, session: AsyncSession, callback: VerifiedCallback) -> Shop:
    """Use the nonce, trade the code for tokens and activate the shop, in one transaction.

    The nonce is deleted first so a concurrent replay of the same callback finds nothing;
    if anything after that fails, the caller's rollback puts the nonce back.
    """
    if not await ShopRepository(session).consume_oauth_state(callback.nonce, callback.shop):
        raise AppError(
            "This install link was already used; start the install again", code="state_used"
        )
    try:
        grant = await tokens.request_token(
            state, callback.shop, {"code": callback.code, "expiring": "1"}
        )
    except tokens.TokenRequestRejected as exc:
        raise AppError(
            f"Shopify did not accept the authorization code: {exc.message}",
            code="code_exchange_failed",
        ) from exc
    return await _activate(state, session, callback.shop, grant)


async def install_from_session_token(
    state: State, session: AsyncSession, token: signing.SessionToken, id_token: str
) -> Shop:
    """The shop an embedded load is for, installing it by token exchange when needed.

    Managed installation (App Store) never hits our OAuth callback: the first embedded
    load is the install. A known shop with a usable token is returned untouched.
    """
    existing = await ShopRepository(session).get_by_domain(token.shop)
    if (
        existing is not None
        and existing.status == ShopStatus.installed
        and tokens.has_usable_token(existing, utcnow())
    ):
        return existing
    try:
        grant = await tokens.request_token(
            state,
            token.shop,
            {
                "grant_type": TOKEN_EXCHANGE_GRANT,
                "subject_token": id_token,
                "subject_token_type": ID_TOKEN_TYPE,
                "requested_token_type": OFFLINE_TOKEN_TYPE,
                "expiring": "1",
            },
        )
    except tokens.TokenRequestRejected as exc:
        raise AppError(
            f"Shopify did not accept the session token for an access token: {exc.message}. "
            "Reload Stamp from your Shopify admin.",
            code="token_exchange_failed",
        ) from exc
    return await _activate(state, session, token.shop, grant)


async def _activate(state: State, session: AsyncSession, domain: str, grant: TokenGrant) -> Shop:
    missing = missing_scopes(state.settings.SHOPIFY_SCOPES, grant.scope)
    if missing:
        raise Forbidden(
            "Shopify granted fewer permissions than Stamp needs; missing: "
            + ", ".join(sorted(missing)),
            code="missing_scopes",
        )
    info = await fetch_shop_info(state, domain, grant.access_token)
    now = utcnow()
    shop = await ShopRepository(session).get_or_create_by_domain(domain)
    newly_active = shop.status != ShopStatus.installed or shop.installed_at is None
    shop.platform_shop_id = info.id
    shop.name = info.name
    shop.email = info.email
    shop.currency = info.currency_code.upper()
    shop.iana_timezone = info.iana_timezone
    shop.scopes = grant.scope
    if shop.status != ShopStatus.installed or shop.installed_at is None:
        shop.installed_at = now
    shop.status = ShopStatus.installed
    shop.uninstalled_at = None
    await tokens.store_grant(state, session, shop, grant, now)
    await ensure_default_program(session, shop)
    if newly_active:
        # History first: tiers, win-back and analytics start from the shop's past orders.
        from app.imports.tasks import backfill_shop_history

        shop.history_imported_at = None  # the sweep sends the job again if this one is lost
        await session.flush()
        enqueue(backfill_shop_history, shop.id)
    return shop


async def installed_shop(session: AsyncSession, domain: str) -> Shop | None:
    """The shop if Stamp is currently installed on it."""
    shop = await ShopRepository(session).get_by_domain(domain)
    return shop if shop is not None and shop.status == ShopStatus.installed else None


def missing_scopes(required: str, granted: str) -> frozenset[str]:
    """Required scopes the grant lacks; a granted `write_x` covers `read_x`."""
    have = set(parse_scopes(granted))
    have |= {"read_" + scope[len("write_") :] for scope in have if scope.startswith("write_")}
    return parse_scopes(required) - have


async def fetch_shop_info(state: State, domain: str, access_token: str) -> ShopInfo:
    """Name, currency and timezone of the shop, so its default program fits its currency."""
    settings = state.settings
    url = (
        f"{settings.shopify_admin_base(domain)}/admin/api/"
        f"{settings.SHOPIFY_API_VERSION}/graphql.json"
    )
    try:
        response = await state.http.post(
            url,
            json={"query": SHOP_INFO_QUERY},
            headers={"X-Shopify-Access-Token": access_token, "Accept": "application/json"},
        )
    except httpx.HTTPError as exc:
        raise tokens.ShopifyUnavailable(
            f"Could not reach Shopify to read {domain}'s details ({type(exc).__name__})"
        ) from exc
    if not response.is_success:
        raise tokens.ShopifyUnavailable(
            f"Shopify answered {response.status_code} when reading {domain}'s details"
        )
    try:
        return ShopInfo.model_validate(response.json()["data"]["shop"])
    except (ValueError, KeyError, TypeError, ValidationError) as exc:
        raise AppError(
            f"Shopify's answer about {domain} had no usable shop details",
            code="shopify_bad_response",
            status_code=502,
        ) from exc


def embedded_admin_url(settings: Settings, shop: str, host: str | None = None) -> str:
    """Where the merchant lands after installing: Stamp inside their Shopify admin.

    `host` (base64 of e.g. `admin.shopify.com/store/x`) is honoured only when it decodes to
    Shopify's admin for this very shop, so it cannot redirect anywhere else.
    """
    admin = _decode_host(host, shop) if host else None
    if admin is None:
        admin = f"{SHOPIFY_ADMIN_HOST}/store/{shop.removesuffix(MYSHOPIFY_SUFFIX)}"
    return f"https://{admin}/apps/{settings.shopify_api_key}"


def _decode_host(host: str, shop: str) -> str | None:
    try:
        decoded = base64.urlsafe_b64decode(host + "=" * (-len(host) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    decoded = decoded.rstrip("/")
    prefix = f"{SHOPIFY_ADMIN_HOST}/store/"
    if decoded.startswith(prefix) and _STORE_HANDLE_RE.fullmatch(decoded[len(prefix) :]):
        return decoded
    if decoded.lower() == f"{shop}/admin":
        return decoded
    return None
