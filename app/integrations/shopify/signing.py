"""Shopify's signature schemes, as pure functions pinned by the documented test vectors.

Three different schemes share one secret (the app's client secret):
- webhooks: base64 HMAC-SHA256 of the raw body bytes (`X-Shopify-Hmac-Sha256`);
- OAuth / app launch: hex HMAC of the sorted `key=value` pairs joined with `&` (`hmac`);
- app proxy: hex HMAC of the sorted, decoded `key=value` pairs with no separator and
  repeated values comma-joined (`signature`).
Session tokens are HS256 JWTs checked with PyJWT.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt
import jwt.types

SHOP_DOMAIN_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]*\.myshopify\.com$")


def is_valid_shop_domain(domain: str | None) -> bool:
    return bool(domain) and SHOP_DOMAIN_RE.fullmatch(domain or "") is not None


def webhook_hmac(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_webhook(secret: str, body: bytes, header_value: str | None) -> bool:
    if not header_value or not body:
        return False
    return hmac.compare_digest(webhook_hmac(secret, body), header_value.strip())


def _escape_oauth(value: str, *, key: bool) -> str:
    value = value.replace("%", "%25").replace("&", "%26")
    return value.replace("=", "%3D") if key else value


def oauth_message(params: Iterable[tuple[str, str]]) -> str:
    """The string Shopify signs for OAuth and app launches: every param but `hmac`/`signature`.

    Array parameters (`ids[]`) are signed the way Shopify's Python library does:
    `ids=["2", "1"]`, in the order received.
    """
    grouped: dict[str, list[str]] = {}
    for key, value in params:
        if key in {"hmac", "signature"}:
            continue
        grouped.setdefault(key, []).append(value)
    pairs: list[tuple[str, str]] = []
    for key, values in grouped.items():
        if key.endswith("[]"):
            pairs.append((key[:-2], json.dumps(values, separators=(", ", ":"))))
        else:
            pairs.append((key, values[-1]))
    pairs.sort()
    return "&".join(
        f"{_escape_oauth(key, key=True)}={_escape_oauth(value, key=False)}" for key, value in pairs
    )


def oauth_hmac(secret: str, params: Iterable[tuple[str, str]]) -> str:
    message = oauth_message(params)
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def verify_oauth(secret: str, params: Iterable[tuple[str, str]]) -> bool:
    items = list(params)
    given = [value for key, value in items if key == "hmac"]
    if len(given) != 1:
        return False
    return hmac.compare_digest(oauth_hmac(secret, items), given[0].lower())


def app_proxy_message(params: Iterable[tuple[str, str]]) -> str:
    grouped: dict[str, list[str]] = {}
    for key, value in params:
        if key == "signature":
            continue
        grouped.setdefault(key, []).append(value)
    return "".join(sorted(f"{key}={','.join(values)}" for key, values in grouped.items()))


def app_proxy_signature(secret: str, params: Iterable[tuple[str, str]]) -> str:
    message = app_proxy_message(params)
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


# ASGI scope key: the raw query string whose app-proxy signature an edge middleware
# (the storefront rate limiter) already verified, so the endpoint need not check it again.
APP_PROXY_VERIFIED_QUERY = "stamp.app_proxy_verified_query"


def verify_app_proxy(secret: str, params: Iterable[tuple[str, str]]) -> bool:
    items = list(params)
    given = [value for key, value in items if key == "signature"]
    for once_only in ("signature", "shop", "timestamp"):
        if sum(1 for key, _ in items if key == once_only) > 1:
            return False
    if len(given) != 1:
        return False
    return hmac.compare_digest(app_proxy_signature(secret, items), given[0].lower())


class SessionTokenError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class SessionToken:
    shop: str
    user_id: str | None
    session_id: str | None
    claims: Mapping[str, Any]


def decode_session_token(
    token: str, api_key: str, secret: str, *, leeway: int = 10, now: float | None = None
) -> SessionToken:
    """Check an App Bridge session token: signature, times, audience, and iss/dest agreement."""
    options: jwt.types.Options = {"require": ["iss", "dest", "aud", "exp", "nbf"]}
    try:
        if now is not None:
            claims = _decode_at(token, api_key, secret, leeway, options, now)
        else:
            claims = jwt.decode(
                token,
                secret,
                algorithms=["HS256"],
                audience=api_key,
                leeway=leeway,
                options=options,
            )
    except jwt.PyJWTError as exc:
        raise SessionTokenError(f"invalid session token: {exc}") from exc
    dest = urlsplit(str(claims["dest"]))
    issuer = urlsplit(str(claims["iss"]))
    if dest.scheme != "https" or not is_valid_shop_domain(dest.hostname):
        raise SessionTokenError("session token dest is not a shop domain")
    if (issuer.scheme, issuer.netloc) != (dest.scheme, dest.netloc):
        raise SessionTokenError("session token iss and dest differ")
    return SessionToken(
        shop=str(dest.hostname).lower(),
        user_id=str(claims["sub"]) if claims.get("sub") is not None else None,
        session_id=str(claims["sid"]) if claims.get("sid") is not None else None,
        claims=claims,
    )


def _decode_at(
    token: str, api_key: str, secret: str, leeway: int, options: jwt.types.Options, now: float
) -> dict[str, Any]:
    """Decode as if the clock read `now` (for the documented vectors)."""
    claims: dict[str, Any] = jwt.decode(
        token,
        secret,
        algorithms=["HS256"],
        audience=api_key,
        options={**options, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
    )
    if float(claims["exp"]) + leeway < now:
        raise jwt.ExpiredSignatureError("Signature has expired")
    if float(claims["nbf"]) - leeway > now:
        raise jwt.ImmatureSignatureError("The token is not yet valid (nbf)")
    return claims
