"""POST /api/v1/members: the "new CRM customer → member" recipe (docs/connectors.md)."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Member, MemberEvent
from app.program.service import ensure_default_program
from app.settings import Settings
from tests.builders import api_key_for, create_member, create_shop, row_counts


async def test_a_new_contact_becomes_a_member_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given a shop
    shop = await create_shop(session, settings)
    await ensure_default_program(session, shop)
    await session.commit()
    headers = await api_key_for(session, shop)
    body = {"email": "Zed@Example.com", "first_name": "Zed"}

    # when Zapier posts the same new contact twice
    first = await client.post("/api/v1/members", json=body, headers=headers)
    second = await client.post("/api/v1/members", json=body, headers=headers)

    # then one guest member exists, announced once as member.created
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json() == second.json()
    assert first.json()["email"] == "zed@example.com"
    assert first.json()["points_balance"] == 0
    await session.rollback()
    assert len((await session.execute(select(Member))).scalars().all()) == 1
    names = (await session.execute(select(MemberEvent.name))).scalars().all()
    assert names == ["Stamp Member Joined"]


async def test_an_existing_customer_is_returned_unchanged(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    await create_member(session, shop, customer_id="42", email="ann@example.com")
    headers = await api_key_for(session, shop)
    before = await row_counts(session)

    response = await client.post(
        "/api/v1/members",
        json={"email": "other@example.com", "customer_id": "42"},
        headers=headers,
    )

    assert response.status_code == 200
    assert (response.json()["customer_id"], response.json()["email"]) == ("42", "ann@example.com")
    assert await row_counts(session) == before


async def test_a_bad_email_is_refused_and_nothing_written(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    headers = await api_key_for(session, shop)
    before = await row_counts(session)

    response = await client.post("/api/v1/members", json={"email": "nope"}, headers=headers)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_failed"
    assert await row_counts(session) == before
