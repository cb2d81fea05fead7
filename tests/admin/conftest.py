from __future__ import annotations

from collections.abc import Iterator

import pytest
import respx
from starlette.applications import Starlette
from starlette.routing import Route

from app.main import create_app
from app.state import State
from tests.shops.support import WHOAMI, whoami


@pytest.fixture
def app(state: State) -> Starlette:
    """The real app, plus one endpoint that exercises `require_shop` over HTTP."""
    application = create_app(state.settings)
    application.router.routes.append(Route(WHOAMI, whoami))
    return application


@pytest.fixture
def shopify() -> Iterator[respx.MockRouter]:
    """Shopify at the HTTP boundary; any unmocked outbound request fails the test."""
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        yield router
