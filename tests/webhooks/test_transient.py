"""Which failures a platform should retry (503) rather than keep as a dead letter."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.state import State
from webhooks.pipeline import is_transient


@pytest.mark.postgres_only
@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
async def test_a_deadlock_or_serialization_failure_is_retried(state: State, sqlstate: str) -> None:
    # Given PostgreSQL aborting a transaction as it does for a deadlock
    raised = f"DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '{sqlstate}'; END $$"
    with pytest.raises(DBAPIError) as caught:
        async with state.engine.connect() as connection:
            await connection.execute(text(raised))

    # Then the delivery is answered 503 for a retry, not dead-lettered
    assert is_transient(caught.value) is True


@pytest.mark.postgres_only
async def test_an_error_in_the_statement_itself_is_not_retried(state: State) -> None:
    with pytest.raises(DBAPIError) as caught:
        async with state.engine.connect() as connection:
            await connection.execute(text("SELECT 1 / 0"))

    assert is_transient(caught.value) is False
