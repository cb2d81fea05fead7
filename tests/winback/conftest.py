"""Win-back fixtures."""

from __future__ import annotations

import pytest

from app.state import State


@pytest.fixture
def winback_state(state: State) -> State:
    """The test State (the win-back tables come from the migrations like every other)."""
    return state
