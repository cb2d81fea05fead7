"""Headless API: authentication, member JSON, tenancy, and the OpenAPI document."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.api_keys.service import revoke_key
from app.ledger import service as ledger
from app.models import ShopStatus
from app.program.service import ensure_default_program
from app.settings import Settings
from tests.builders import api_key_for, create_member, create_shop


async def test_member_json_has_the_documented_shape(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given a Bronze member with 120 available and 30 pending points
    shop = await create_shop(session, settings)
    await ensure_default_program(session, shop)
    member = await create_member(
        session,
        shop,
        customer_id="42",
        email="ann@example.com",
        referral_code="ABCD2345",
        tier_name="Bronze",
    )
    await ledger.post(session, shop.id, ledger.Posting(member.id, 120, "earn", "order:1:earn"))
    await ledger.post(
        session, shop.id, ledger.Posting(member.id, 30, "earn", "order:2:earn", status="pending")
    )
    await session.commit()
    headers = await api_key_for(session, shop)

    # when the merchant's backend asks for the member
    response = await client.get("/api/v1/members/42", headers=headers)

    # then it gets exactly the member JSON design.md fixes
    assert response.status_code == 200
    assert response.json() == {
        "customer_id": "42",
        "email": "ann@example.com",
        "points_balance": 120,
        "pending_points": 30,
        "lifetime_points": 120,
        "tier": {
            "name": "Bronze",
            "multiplier": "1",
            "next": {"name": "Silver", "points_needed": 380},
        },
        "referral_url": "https://some-shop.myshopify.com/apps/stamp/r/ABCD2345",
        "winback": None,
    }


async def test_find_member_by_email_is_case_insensitive(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    await create_member(session, shop, customer_id="42", email="ann@example.com")
    headers = await api_key_for(session, shop)

    response = await client.get(
        "/api/v1/members", params={"email": "Ann@Example.com"}, headers=headers
    )

    assert response.status_code == 200
    assert [m["customer_id"] for m in response.json()["data"]] == ["42"]
    assert response.json()["next_cursor"] is None


async def test_member_of_another_shop_is_not_found(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    mine = await create_shop(session, settings)
    theirs = await create_shop(session, settings, domain="other-shop.myshopify.com")
    await create_member(session, theirs, customer_id="42", email="ann@example.com")
    headers = await api_key_for(session, mine)

    response = await client.get("/api/v1/members/42", headers=headers)
    by_email = await client.get(
        "/api/v1/members", params={"email": "ann@example.com"}, headers=headers
    )

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "member_not_found"
    assert by_email.json()["data"] == []


async def test_requests_without_a_valid_key_are_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    await create_member(session, shop, customer_id="42")
    headers = await api_key_for(session, shop)
    key_id = 1

    missing = await client.get("/api/v1/members/42")
    wrong = await client.get(
        "/api/v1/members/42", headers={"Authorization": "Bearer stamp_sk_nope"}
    )
    await revoke_key(session, shop, key_id)
    await session.commit()
    revoked = await client.get("/api/v1/members/42", headers=headers)

    assert (missing.status_code, missing.json()["error"]["code"]) == (401, "missing_api_key")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "invalid_api_key")
    assert (revoked.status_code, revoked.json()["error"]["code"]) == (401, "invalid_api_key")


async def test_keys_of_an_uninstalled_shop_stop_working(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    headers = await api_key_for(session, shop)
    shop.status = ShopStatus.uninstalled
    await session.commit()

    response = await client.get("/api/v1/members/42", headers=headers)

    assert response.status_code == 401


async def test_bad_query_is_a_422_with_the_field_named(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    headers = await api_key_for(session, shop)

    response = await client.get(
        "/api/v1/members", params={"email": "not-an-email"}, headers=headers
    )

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_failed"
    assert response.json()["error"]["message"].startswith("email:")


async def test_openapi_document_describes_every_route(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    from app.main import create_app

    served = {
        path
        for route in create_app(settings).routes
        if (path := getattr(route, "path", "")).startswith("/api/v1/")
        and path != "/api/v1/openapi.json"
    }

    response = await client.get("/api/v1/openapi.json")

    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == served
    assert {"/api/v1/members/{customer_id}", "/api/v1/redemptions", "/api/v1/winback"} <= served
    member = document["components"]["schemas"]["MemberOut"]
    assert set(member["required"]) >= {"customer_id", "points_balance", "tier", "referral_url"}
    assert document["paths"]["/api/v1/members/{customer_id}/adjustments"]["post"]["requestBody"][
        "content"
    ]["application/json"]["schema"] == {"$ref": "#/components/schemas/AdjustmentIn"}


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    ready = await client.get("/readyz")

    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "checks": {"database": "ok", "queue": "ok"}}
