"""A WooCommerce REST client over the one shared `httpx.AsyncClient`.

Stores must be HTTPS (the reference's recommendation), so requests use HTTP Basic auth with
the consumer key and secret; no OAuth 1.0a signer is kept. Every base URL is a
merchant-supplied URL and passes the SSRF guard before the first request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from app.errors import ValidationFailed
from app.http import check_public_url
from app.models import Platform, Shop
from app.state import State

REST_PREFIX = "/wp-json/wc/v3"


class WooError(Exception):
    """The store refused a call or answered something that is not what the API documents."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True, slots=True)
class Credentials:
    consumer_key: str
    consumer_secret: str

    def dumps(self) -> str:
        return orjson.dumps(
            {"consumer_key": self.consumer_key, "consumer_secret": self.consumer_secret}
        ).decode()

    @classmethod
    def loads(cls, text: str) -> Credentials:
        data = orjson.loads(text)
        return cls(str(data["consumer_key"]), str(data["consumer_secret"]))


def normalise_store_url(value: str | None) -> str:
    """`https://host[/path]` with no trailing slash, query or fragment; a 422 otherwise."""
    raw = (value or "").strip()
    parts = urlsplit(raw)
    if parts.scheme != "https" or not parts.hostname:
        raise ValidationFailed("The store URL must start with https://", code="url_not_https")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValidationFailed("The store URL must be a plain address", code="url_invalid")
    host = parts.hostname.lower()
    port = f":{parts.port}" if parts.port and parts.port != 443 else ""
    path = parts.path.rstrip("/")
    return f"https://{host}{port}{path}"


def store_url_of(shop: Shop) -> str:
    """A WooCommerce shop's `domain` is its store URL without the scheme."""
    return f"https://{shop.domain}"


def domain_of(store_url: str) -> str:
    return store_url.removeprefix("https://")


class WooClient:
    """One store's REST API (`/wp-json/wc/v3`)."""

    def __init__(self, http: httpx.AsyncClient, store_url: str, credentials: Credentials) -> None:
        self.http = http
        self.base = store_url + REST_PREFIX
        self.auth = httpx.BasicAuth(credentials.consumer_key, credentials.consumer_secret)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        response = await self.http.request(
            method, self.base + path, params=params, json=json, auth=self.auth
        )
        if response.status_code >= 400:
            raise WooError(
                f"{method} {path} answered {response.status_code}: {response.text[:300]}",
                response.status_code,
            )
        return response

    async def get(self, path: str, **params: str | int) -> Any:
        return _json(await self.request("GET", path, params=params or None))

    async def post(self, path: str, body: Any) -> Any:
        return _json(await self.request("POST", path, json=body))

    async def put(self, path: str, body: Any) -> Any:
        return _json(await self.request("PUT", path, json=body))


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise WooError(f"the store answered non-JSON ({response.status_code})") from exc


def client_for(state: State, store_url: str, credentials: Credentials) -> WooClient:
    """A client for a store URL that passed the SSRF guard just now (DNS may have changed)."""
    check_public_url(store_url, state.settings)
    return WooClient(state.http, store_url, credentials)


def client_for_shop(state: State, shop: Shop) -> WooClient:
    if shop.platform != Platform.woocommerce or shop.access_token_enc is None:
        raise WooError(f"shop {shop.id} has no WooCommerce keys")
    credentials = Credentials.loads(state.cipher.decrypt(shop.access_token_enc))
    return client_for(state, store_url_of(shop), credentials)
