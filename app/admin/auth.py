"""Admin authentication: App Bridge session tokens, and Stamp's own login link outside Shopify.

App Bridge puts a one-minute HS256 session token on every admin fetch
(`Authorization: Bearer <jwt>`). A bad or expired token gets 401 with
`X-Shopify-Retry-Invalid-Session-Request: 1`, which tells App Bridge to fetch a fresh
token and retry once; a shop that is not installed gets a plain 401, since a retry
cannot help.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from app.errors import Forbidden, Unauthorized
from app.integrations.shopify import signing
from app.models import Shop, ShopStatus
from app.settings import Settings
from app.shops.repository import ShopRepository
from app.state import get_state

RETRY_HEADER = "X-Shopify-Retry-Invalid-Session-Request"


class InvalidSessionToken(Unauthorized):
    """401 carrying the header that makes App Bridge retry with a fresh session token."""

    code = "invalid_session_token"
    headers: dict[str, str] = {RETRY_HEADER: "1"}


def session_token(request: Request) -> signing.SessionToken:
    """The verified session token of an admin fetch, or `InvalidSessionToken`."""
    settings = get_state(request).settings
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidSessionToken("Send the App Bridge session token as 'Authorization: Bearer'")
    try:
        return signing.decode_session_token(
            token.strip(), settings.shopify_api_key, settings.shopify_api_secret, leeway=10
        )
    except signing.SessionTokenError as exc:
        raise InvalidSessionToken(f"The session token was refused: {exc}") from exc


async def require_shop(request: Request, session: AsyncSession | None = None) -> Shop:
    """The installed shop an admin fetch is for, from its App Bridge session token.

    Pass the handler's unit-of-work `session` to get the shop attached to it; without one
    the shop is read in a short session of its own and returned detached.
    """
    token = session_token(request)
    if session is not None:
        shop = await ShopRepository(session).get_by_domain(token.shop)
    else:
        async with get_state(request).sessionmaker() as own_session:
            shop = await ShopRepository(own_session).get_by_domain(token.shop)
    if shop is None or shop.status != ShopStatus.installed:
        raise Unauthorized(
            f"Stamp is not installed on {token.shop}; open it from your Shopify admin",
            code="shop_not_installed",
        )
    return shop


# --- every admin page: session token (embedded) or Stamp's own login cookie (standalone) ---

LOGIN_PATH = "/admin/login"
COOKIE_NAME = "stamp_admin"
COOKIE_PATH = "/admin"
LOGIN_SALT = "stamp-admin-login-link"
COOKIE_SALT = "stamp-admin-session"
LOGIN_LINK_SECONDS = 15 * 60
COOKIE_SECONDS = 12 * 60 * 60
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class NotSignedIn(Unauthorized):
    """No session token and no login cookie: the page tells the merchant how to open Stamp."""

    code = "not_signed_in"


@dataclass(frozen=True, slots=True)
class AdminAuth:
    """Who is looking at the admin, and how they proved it.

    `embedded` requests carry an App Bridge session token (bearer fetches are CSRF-safe);
    standalone requests carry the login cookie, whose `csrf` value every write must echo.
    """

    embedded: bool
    shop_domain: str | None
    shop_id: int | None
    actor: str
    csrf: str | None = None


def _serializer(settings: Settings, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key, salt=salt)


def login_link(settings: Settings, shop: Shop) -> str:
    """A short-lived signed URL that signs its opener in to this shop's admin."""
    token = _serializer(settings, LOGIN_SALT).dumps({"shop_id": shop.id})
    return settings.external_url(f"{LOGIN_PATH}?{urlencode({'token': token})}")


def read_login_token(settings: Settings, token: str) -> int:
    """The shop id a login link was signed for; 401 if forged or older than its lifetime."""
    try:
        data = _serializer(settings, LOGIN_SALT).loads(token, max_age=LOGIN_LINK_SECONDS)
    except SignatureExpired as exc:
        raise NotSignedIn(
            "This login link has expired; run `stamp admin login-link` for a new one"
        ) from exc
    except BadSignature as exc:
        raise NotSignedIn("This login link is not valid") from exc
    return int(data["shop_id"])


def session_cookie(settings: Settings, shop_id: int) -> tuple[str, str]:
    """The cookie value for a signed-in shop, and the CSRF token forms must send with it."""
    csrf = secrets.token_urlsafe(24)
    return _serializer(settings, COOKIE_SALT).dumps({"shop_id": shop_id, "csrf": csrf}), csrf


def _from_cookie(settings: Settings, request: Request) -> AdminAuth | None:
    raw = request.cookies.get(COOKIE_NAME)
    if not raw:
        return None
    try:
        data = _serializer(settings, COOKIE_SALT).loads(raw, max_age=COOKIE_SECONDS)
    except BadSignature:
        return None
    return AdminAuth(
        embedded=False,
        shop_domain=None,
        shop_id=int(data["shop_id"]),
        actor="login-link",
        csrf=str(data["csrf"]),
    )


def _from_token(token: signing.SessionToken) -> AdminAuth:
    user = f"shopify-user:{token.user_id}" if token.user_id else "shopify-admin"
    return AdminAuth(embedded=True, shop_domain=token.shop, shop_id=None, actor=user)


def authenticate(request: Request) -> AdminAuth:
    """Bearer session token, then `id_token` on a document load, then the login cookie."""
    settings = get_state(request).settings
    if request.headers.get("authorization"):
        return _from_token(session_token(request))
    id_token = request.query_params.get("id_token")
    if id_token and request.method in SAFE_METHODS:
        try:
            return _from_token(
                signing.decode_session_token(
                    id_token, settings.shopify_api_key, settings.shopify_api_secret, leeway=10
                )
            )
        except signing.SessionTokenError as exc:
            raise InvalidSessionToken(f"The session token was refused: {exc}") from exc
    found = _from_cookie(settings, request)
    if found is None:
        raise NotSignedIn(
            "Open Stamp from your Shopify admin, or sign in with a link from "
            "`stamp admin login-link --shop your-store.myshopify.com`"
        )
    return found


def check_csrf(request: Request, auth: AdminAuth, submitted: str | None) -> None:
    """Writes under the cookie must come from Stamp's own pages: same origin and the token."""
    if auth.embedded or request.method in SAFE_METHODS:
        return
    settings = get_state(request).settings
    origin = request.headers.get("origin")
    allowed = {settings.APP_URL.rstrip("/"), f"{request.url.scheme}://{request.url.netloc}"}
    if origin is not None and origin not in allowed:
        raise Forbidden("This form was sent from another site", code="csrf_origin")
    if not submitted or auth.csrf is None or not hmac.compare_digest(submitted, auth.csrf):
        raise Forbidden("The form expired; reload the page and try again", code="csrf_token")


async def admin_shop(session: AsyncSession, auth: AdminAuth) -> Shop:
    """The installed shop the request is for, attached to the handler's session."""
    repo = ShopRepository(session)
    if auth.shop_id is not None:
        shop = await session.get(Shop, auth.shop_id)
    else:
        assert auth.shop_domain is not None
        shop = await repo.get_by_domain(auth.shop_domain)
    if shop is None or shop.status != ShopStatus.installed:
        raise Unauthorized(
            "Stamp is not installed on this shop; open it from your Shopify admin",
            code="shop_not_installed",
        )
    return shop
