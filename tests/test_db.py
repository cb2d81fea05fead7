"""Statements the batched paths share (app/db.py), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import in_list, insert_rows_ignoring_conflicts
from app.models import Base, WebhookDelivery
from app.settings import Settings
from tests.builders import create_shop, row_counts

TABLE = Base.metadata.tables[WebhookDelivery.__tablename__]
KEY = ("shop_id", "source", "delivery_id")
AT = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def delivery(shop_id: int, delivery_id: str) -> dict[str, Any]:
    return {
        "shop_id": shop_id,
        "source": "shopify",
        "delivery_id": delivery_id,
        "topic": "orders/paid",
        "body": b'{"id": 1}',
        "received_at": AT,
        "outcome": "processed",
    }


async def test_rows_are_inserted_once_and_only_new_ones_come_back(
    session: AsyncSession, settings: Settings
) -> None:
    # given a delivery already stored
    shop = await create_shop(session, settings)
    await insert_rows_ignoring_conflicts(session, TABLE, [delivery(shop.id, "d1")], KEY, KEY)
    await session.commit()

    # when it comes again with two new ones, one of them twice
    rows = [delivery(shop.id, name) for name in ("d2", "d1", "d3", "d3")]
    result = await insert_rows_ignoring_conflicts(session, TABLE, rows, KEY, ("delivery_id",))
    inserted = sorted(result.scalars())
    await session.commit()

    # then only the new ones are inserted, once each, with every column as given
    assert inserted == ["d2", "d3"]
    stored = (await session.execute(select(WebhookDelivery).order_by(WebhookDelivery.id))).all()
    assert [(row[0].delivery_id, row[0].body, row[0].received_at) for row in stored] == [
        ("d1", b'{"id": 1}', AT),
        ("d2", b'{"id": 1}', AT),
        ("d3", b'{"id": 1}', AT),
    ]


async def test_rows_without_a_defaulted_column_are_refused_and_nothing_is_written(
    session: AsyncSession, settings: Settings
) -> None:
    # given rows that leave out `received_at` (a column with a Python-side default)
    shop = await create_shop(session, settings)
    await session.commit()
    before = await row_counts(session)
    row = delivery(shop.id, "d1")
    del row["received_at"]

    # when they are inserted, then the insert is refused by name and no row changed
    with pytest.raises(ValueError, match="must carry received_at"):
        await insert_rows_ignoring_conflicts(session, TABLE, [row], KEY, ("delivery_id",))
    assert await row_counts(session) == before


async def test_a_list_of_any_length_matches_with_one_statement(
    session: AsyncSession, settings: Settings
) -> None:
    # given three stored deliveries
    shop = await create_shop(session, settings)
    rows = [delivery(shop.id, name) for name in ("d1", "d2", "d3")]
    await insert_rows_ignoring_conflicts(session, TABLE, rows, KEY, ("delivery_id",))
    await session.commit()
    dialect = session.get_bind().dialect.name
    statement = select(WebhookDelivery.delivery_id).where(
        WebhookDelivery.shop_id == bindparam("shop_id"),
        in_list(dialect, WebhookDelivery.delivery_id, "ids"),
    )

    # when lists of one, three and no ids are looked up
    found = [
        sorted((await session.execute(statement, {"shop_id": shop.id, "ids": ids})).scalars())
        for ids in (["d2"], ["d3", "d1", "d9"], [])
    ]

    # then each finds exactly its stored ids; on PostgreSQL the list is one array parameter
    assert found == [["d2"], ["d1", "d3"], []]
    if dialect == "postgresql":
        assert "= ANY (" in str(statement.compile(dialect=session.get_bind().dialect))
