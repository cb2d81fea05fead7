from __future__ import annotations

import pytest
from starlette.applications import Starlette

from app.state import State
from tests.integrations.woocommerce.support import wire


@pytest.fixture
def app(state: State) -> Starlette:
    """The real app, with the WooCommerce routes wired as `app.main` will wire them."""
    from app.main import create_app

    return wire(create_app(state.settings))
