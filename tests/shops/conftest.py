from __future__ import annotations

from collections.abc import Iterator

import pytest
import respx


@pytest.fixture
def shopify() -> Iterator[respx.MockRouter]:
    """Shopify at the HTTP boundary; any unmocked outbound request fails the test."""
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        yield router
