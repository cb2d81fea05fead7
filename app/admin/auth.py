"""Session-token authentication for the embedded admin's fetch/XHR requests.

App Bridge puts a one-minute HS256 session token on every admin fetch
(`Authorization: Bearer <jwt>`). A bad or expired token gets 401 with
`X-Shopify-Retry-Invalid-Session-Request: 1`, which tells App Bridge to fetch a fresh
token and retry once; a shop that is not installed gets a plain 401, since a retry
cannot help.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from app.errors import Unauthorized
from app.integrations.shopify import signing
from app.models import Shop, ShopStatus
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
