from __future__ import annotations

from collections.abc import Iterator

import pytest
import respx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.admin.auth import require_shop
from app.state import State
from tests.shops.support import build_app


async def whoami(request: Request) -> Response:
    """A stand-in admin API endpoint guarded by `require_shop`."""
    shop = await require_shop(request)
    return JSONResponse({"shop": shop.domain, "name": shop.name})


@pytest.fixture
def app(state: State) -> Starlette:
    return build_app(Route("/admin/api/whoami", whoami))


@pytest.fixture
def shopify() -> Iterator[respx.MockRouter]:
    """Shopify at the HTTP boundary; any unmocked outbound request fails the test."""
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        yield router
