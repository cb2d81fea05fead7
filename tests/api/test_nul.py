"""PostgreSQL cannot store NUL in text: the API refuses it with a clear error, writing nothing."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.program.service import ensure_default_program
from app.settings import Settings
from tests.builders import api_key_for, create_shop, row_counts


async def test_a_nul_in_a_body_is_refused_and_nothing_is_written(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    await ensure_default_program(session, shop)
    headers = await api_key_for(session, shop)
    before = await row_counts(session)

    response = await client.post(
        "/api/v1/members", json={"customer_id": "1", "email": "a\u0000@b.example"}, headers=headers
    )

    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "validation_failed",
        "message": "Text may not contain the NUL character (\\u0000)",
    }
    assert await row_counts(session) == before


async def test_a_nul_in_a_query_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    headers = await api_key_for(session, shop)

    response = await client.get("/api/v1/rewards?customer_id=1%00", headers=headers)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
