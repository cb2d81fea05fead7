"""The rate limiter verifies the app-proxy signature; the endpoint trusts that for the same
bytes only, and checks any other query itself."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest
from starlette.requests import Request

from app.errors import Unauthorized
from app.integrations.shopify.signing import APP_PROXY_VERIFIED_QUERY, app_proxy_signature
from app.settings import Settings
from app.state import State
from widgets.routes import check_signature


def request_for(query: bytes, verified: bytes | None) -> Request:
    scope = {"type": "http", "method": "GET", "path": "/proxy/api/state", "headers": []}
    scope["query_string"] = query
    if verified is not None:
        scope[APP_PROXY_VERIFIED_QUERY] = verified
    return Request(scope)


def signed_query(settings: Settings) -> bytes:
    params = {"shop": "some-shop.myshopify.com", "logged_in_customer_id": "7",
              "path_prefix": "/apps/stamp", "timestamp": str(int(time.time()))}  # fmt: skip
    params["signature"] = app_proxy_signature(settings.shopify_api_secret, params.items())
    return urlencode(params).encode()


async def test_a_query_the_limiter_verified_is_not_verified_again(
    settings: Settings, state: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    query = signed_query(settings)
    calls: list[object] = []
    monkeypatch.setattr("widgets.routes.verify_app_proxy", lambda *args: calls.append(args))

    assert check_signature(request_for(query, query), state) == (
        "some-shop.myshopify.com",
        "/apps/stamp",
    )
    assert calls == []


async def test_a_forged_query_is_refused_even_if_another_query_was_verified(
    settings: Settings, state: State
) -> None:
    genuine = signed_query(settings)
    forged = genuine.replace(b"logged_in_customer_id=7", b"logged_in_customer_id=8")

    with pytest.raises(Unauthorized):
        check_signature(request_for(forged, genuine), state)
