"""The widget's state is the storefront's hot path: its statements are counted, not timed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event

from app.settings import Settings
from app.state import State
from tests.proxy.test_routes import arrange, signed


@contextmanager
def recorded(state: State) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # SQLite's explicit BEGIN (see app/db.py) is a local call, not a round trip.
        if statement != "BEGIN":
            statements.append(" ".join(statement.split())[:60])

    event.listen(state.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(state.engine.sync_engine, "before_cursor_execute", record)


async def test_a_known_member_is_served_by_two_reads(
    client: httpx.AsyncClient, session: Any, settings: Settings, state: State
) -> None:
    # Given a member, and a first request that parses and caches the shop's program
    await arrange(session, settings)
    assert (await client.get(signed(settings, "api/state"))).status_code == 200

    # When the widget asks again
    with recorded(state) as statements:
        response = await client.get(signed(settings, "api/state"))

    # Then the shop (with its program version) and the member (with tier points) are read
    assert response.status_code == 200
    assert response.json()["member"]["points_balance"] == 620
    assert [s.split(" FROM ")[0][:14] for s in statements] == ["SELECT shops.i", "SELECT members"]


async def test_a_guest_is_served_by_one_read(
    client: httpx.AsyncClient, session: Any, settings: Settings, state: State
) -> None:
    await arrange(session, settings)
    assert (await client.get(signed(settings, "api/state", customer_id=""))).status_code == 200

    with recorded(state) as statements:
        response = await client.get(signed(settings, "api/state", customer_id=""))

    assert response.status_code == 200
    assert response.json()["member"] is None
    assert len(statements) == 1
