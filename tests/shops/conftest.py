from __future__ import annotations

from collections.abc import Iterator

import pytest
import respx
from starlette.applications import Starlette

from app.state import State
from tests.shops.support import build_app


@pytest.fixture
def app(state: State) -> Starlette:
    return build_app()


@pytest.fixture
def shopify() -> Iterator[respx.MockRouter]:
    """Shopify at the HTTP boundary; any unmocked outbound request fails the test."""
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        yield router
