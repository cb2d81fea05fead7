"""Who is logged in on a WooCommerce storefront: a short-lived token minted by the plugin.

The WordPress plugin (extensions/woocommerce) signs, for the logged-in user only, an
HS256 JWT that the widget sends as `Authorization: Bearer <token>`:

    header  {"alg": "HS256", "typ": "JWT"}
    claims  {"aud": "stamp-storefront", "shop": <Stamp shop id>, "sub": "<WP user id>",
             "email": "<user email>", "iat": <unix s>, "exp": <iat + 600 at most>}
    key     hex(HMAC-SHA256(key=<shop webhook secret>, msg="stamp-storefront-token-v1"))

The plugin needs no extra provisioning: the webhook secret Stamp generated at connect is
stored by WooCommerce with Stamp's webhooks, where the plugin reads it. The derived key
keeps the two uses apart (a webhook signature can never pass as a token, or back).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import jwt

from app.errors import Unauthorized
from app.models import Shop

AUDIENCE = "stamp-storefront"
KEY_LABEL = b"stamp-storefront-token-v1"
MAX_LIFETIME_SECONDS = 900
LEEWAY_SECONDS = 30


class TokenRefused(Unauthorized):
    code = "invalid_customer_token"


def token_key(webhook_secret: str) -> str:
    return hmac.new(webhook_secret.encode(), KEY_LABEL, hashlib.sha256).hexdigest()


def mint_customer_token(
    shop_id: int, webhook_secret: str, customer_id: str, email: str, now: int, ttl: int = 600
) -> str:
    """What the plugin does, in Python (tests and the demo storefront)."""
    claims = {
        "aud": AUDIENCE,
        "shop": shop_id,
        "sub": customer_id,
        "email": email,
        "iat": now,
        "exp": now + ttl,
    }
    return jwt.encode(claims, token_key(webhook_secret), algorithm="HS256")


def shop_id_claim(token: str) -> int:
    """The shop a token claims to be for, read before verifying to find the shop's secret."""
    try:
        claims: Any = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise TokenRefused("The customer token is not a token") from exc
    shop = claims.get("shop") if isinstance(claims, dict) else None
    # A number past BIGINT would fail in the database as a 500, not as a refused token.
    if isinstance(shop, bool) or not isinstance(shop, int) or not 0 < shop < 2**63:
        raise TokenRefused("The customer token names no shop")
    return shop


def verify_customer_token(
    shop: Shop, webhook_secret: str, token: str, now: float | None = None
) -> tuple[str, str | None]:
    """(customer id, email) from a genuine, unexpired token for this shop; 401 otherwise."""
    options: dict[str, Any] = {"require": ["aud", "shop", "sub", "iat", "exp"]}
    try:
        if now is not None:
            options.update(verify_exp=False, verify_iat=False)
        claims: dict[str, Any] = jwt.decode(
            token,
            token_key(webhook_secret),
            algorithms=["HS256"],
            audience=AUDIENCE,
            leeway=LEEWAY_SECONDS,
            options=options,  # type: ignore[arg-type]
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenRefused("The customer token has expired", code="customer_token_expired") from exc
    except jwt.PyJWTError as exc:
        raise TokenRefused(f"The customer token is not valid: {exc}") from exc
    issued, expires = claims["iat"], claims["exp"]
    if not isinstance(issued, int) or not isinstance(expires, int):
        raise TokenRefused("The customer token's times are not whole seconds")
    if now is not None and expires + LEEWAY_SECONDS < now:
        raise TokenRefused("The customer token has expired", code="customer_token_expired")
    if expires - issued > MAX_LIFETIME_SECONDS:
        raise TokenRefused("The customer token lives too long")
    if claims["shop"] != shop.id:
        raise TokenRefused("The customer token is for another shop")
    subject = str(claims["sub"]).strip()
    if not subject.isdigit() or subject == "0":
        raise TokenRefused("The customer token names no customer")
    email = claims.get("email")
    return subject, email.strip().lower() if isinstance(email, str) and email.strip() else None
