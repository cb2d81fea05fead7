from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
import respx
from starlette.applications import Starlette

from app.state import State
from tests.integrations.woocommerce.support import API, STORE_HOST, wire

PUBLIC_ADDRESS = "93.184.215.14"  # a global address; respx answers, nothing is sent
_REAL_GETADDRINFO = socket.getaddrinfo


@pytest.fixture(autouse=True)
def store_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """The store's host resolves to a public address; other names resolve as usual."""

    def fake(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == STORE_HOST:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC_ADDRESS, 443))]
        return _REAL_GETADDRINFO(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


@pytest.fixture
def app(state: State) -> Starlette:
    """The real app, with the WooCommerce routes wired as `app.main` will wire them."""
    from app.main import create_app

    return wire(create_app(state.settings))


@pytest.fixture
def store() -> Iterator[respx.MockRouter]:
    """The store's REST API, answered by respx: nothing leaves the machine."""
    with respx.mock(base_url=API, assert_all_mocked=True, assert_all_called=False) as router:
        router.get("/settings/general").respond(
            200, json=[{"id": "woocommerce_currency", "value": "EUR"}]
        )
        router.get("/webhooks").respond(200, json=[])
        router.post("/webhooks").respond(201, json={"id": 31, "status": "active"})
        yield router
