"""Headless API for the ledger: activity, adjustments and custom events."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.ledger import service as ledger
from app.models import Shop
from app.program.config import CustomActionRule
from app.program.service import current_config, ensure_default_program, save_program
from app.settings import Settings
from tests.builders import api_key_for, create_member, create_shop, row_counts


async def arrange(session: AsyncSession, settings: Settings) -> tuple[Shop, dict[str, str]]:
    shop = await create_shop(session, settings)
    await ensure_default_program(session, shop)
    member = await create_member(session, shop, customer_id="42", email="ann@example.com")
    await ledger.post(session, shop.id, ledger.Posting(member.id, 100, "earn", "order:1:earn"))
    await session.commit()
    return shop, await api_key_for(session, shop)


async def balance(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    response = await client.get("/api/v1/members/42", headers=headers)
    value: int = response.json()["points_balance"]
    return value


async def test_adjustment_is_recorded_with_reason_and_actor(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await arrange(session, settings)
    body = {"points": 25, "reason": "Goodwill for a late parcel", "idempotency_key": "adj-1"}

    response = await client.post("/api/v1/members/42/adjustments", json=body, headers=headers)

    assert response.status_code == 201
    payload = response.json()
    assert (payload["entry"]["points"], payload["entry"]["kind"], payload["entry"]["reason"]) == (
        25,
        "adjust",
        "Goodwill for a late parcel",
    )
    assert payload["member"]["points_balance"] == 125


async def test_repeated_idempotency_key_returns_the_first_response(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await arrange(session, settings)
    body = {"points": 25, "reason": "Goodwill", "idempotency_key": "adj-1"}

    first = await client.post("/api/v1/members/42/adjustments", json=body, headers=headers)
    second = await client.post("/api/v1/members/42/adjustments", json=body, headers=headers)

    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json() == first.json()
    assert await balance(client, headers) == 125


async def test_reused_key_with_another_body_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await arrange(session, settings)
    await client.post(
        "/api/v1/members/42/adjustments",
        headers=headers,
        json={"points": 25, "reason": "Goodwill", "idempotency_key": "adj-1"},
    )
    before = await row_counts(session)

    response = await client.post(
        "/api/v1/members/42/adjustments",
        headers=headers,
        json={"points": 99, "reason": "Other", "idempotency_key": "adj-1"},
    )

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert await row_counts(session) == before
    assert await balance(client, headers) == 125


async def test_deduction_cannot_overdraw_and_changes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await arrange(session, settings)
    before = await row_counts(session)

    response = await client.post(
        "/api/v1/members/42/adjustments",
        headers=headers,
        json={"points": -101, "reason": "Fraud", "idempotency_key": "d"},
    )

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "insufficient_points"
    assert await row_counts(session) == before
    assert await balance(client, headers) == 100


async def test_invalid_adjustments_are_refused_and_change_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await arrange(session, settings)
    before = await row_counts(session)
    bad_bodies: list[Any] = [
        {"points": 0, "reason": "x", "idempotency_key": "a"},
        {"points": 5, "reason": "", "idempotency_key": "a"},
        {"points": 5, "reason": "x"},
        {"points": "many", "reason": "x", "idempotency_key": "a"},
        {"points": 5, "reason": "x", "idempotency_key": "has space"},
    ]

    statuses = [
        (await client.post("/api/v1/members/42/adjustments", json=b, headers=headers)).status_code
        for b in bad_bodies
    ]
    not_json = await client.post("/api/v1/members/42/adjustments", content=b"{", headers=headers)
    unknown = await client.post(
        "/api/v1/members/7/adjustments",
        headers=headers,
        json={"points": 5, "reason": "x", "idempotency_key": "a"},
    )

    assert statuses == [422, 422, 422, 422, 422]
    assert (not_json.status_code, not_json.json()["error"]["code"]) == (400, "invalid_json")
    assert unknown.status_code == 404
    assert await row_counts(session) == before


async def test_activity_is_newest_first_with_cursor_pagination(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await arrange(session, settings)
    for number in range(1, 5):
        await client.post(
            "/api/v1/members/42/adjustments",
            headers=headers,
            json={"points": number, "reason": f"r{number}", "idempotency_key": f"k{number}"},
        )

    first = await client.get("/api/v1/members/42/activity", params={"limit": 3}, headers=headers)
    cursor = first.json()["next_cursor"]
    second = await client.get(
        "/api/v1/members/42/activity", params={"limit": 3, "cursor": cursor}, headers=headers
    )
    bad = await client.get("/api/v1/members/42/activity", params={"cursor": "zzz"}, headers=headers)

    assert [e["points"] for e in first.json()["data"]] == [4, 3, 2]
    assert [e["points"] for e in second.json()["data"]] == [1, 100]
    assert second.json()["next_cursor"] is None
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_cursor")


async def test_custom_event_awards_the_action_once_per_key_and_respects_limits(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop, headers = await arrange(session, settings)
    config = await current_config(session, shop)
    action = CustomActionRule(
        key="followed_instagram", name="Followed us", points=50, limit_per_member=1
    )
    await save_program(
        session, shop, config.model_copy(update={"custom_actions": (action,)}), "test"
    )
    await session.commit()
    event = {"event": "followed_instagram", "email": "ANN@example.com", "idempotency_key": "ig-1"}

    first = await client.post("/api/v1/events", json=event, headers=headers)
    repeat = await client.post("/api/v1/events", json=event, headers=headers)
    again = await client.post(
        "/api/v1/events", headers=headers, json={**event, "idempotency_key": "ig-2"}
    )
    unknown = await client.post(
        "/api/v1/events", headers=headers, json={**event, "event": "nope", "idempotency_key": "x"}
    )

    assert (first.status_code, first.json()["points_awarded"]) == (201, 50)
    assert repeat.json() == first.json()
    assert (again.status_code, again.json()["error"]["code"]) == (409, "custom_action_limit")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (422, "unknown_event")
    assert await balance(client, headers) == 150
    await session.rollback()
    assert len((await session.execute(select(Shop))).scalars().all()) == 1
