"""The Shopify Admin API stand-in: discount mutations, the shop query and token grants."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.demo import DEMO_HEADER
from app.demo.routes import mint_session_token
from app.main import create_app
from app.settings import Settings
from app.shops import service, tokens
from app.state import State
from tests.conftest import _with_state, make_settings

SHOP = "stamp-demo.myshopify.com"
GRAPHQL = f"/demo/shopify-admin/{SHOP}/admin/api/2026-07/graphql.json"
TOKEN = f"/demo/shopify-admin/{SHOP}/admin/oauth/access_token"
BASIC = """
mutation discountCodeBasicCreate($basicCodeDiscount: DiscountCodeBasicInput!) {
  discountCodeBasicCreate(basicCodeDiscount: $basicCodeDiscount) {
    codeDiscountNode { id codeDiscount { ... on DiscountCodeBasic { title codes(first: 1) {
      nodes { code } } } } }
    userErrors { field code message }
  }
}"""
FREE_SHIPPING = """
mutation discountCodeFreeShippingCreate($freeShippingCodeDiscount: DiscountCodeFreeShippingInput!) {
  discountCodeFreeShippingCreate(freeShippingCodeDiscount: $freeShippingCodeDiscount) {
    codeDiscountNode { id codeDiscount { ... on DiscountCodeFreeShipping { title codes(first: 1) {
      nodes { code } } } } }
    userErrors { field code message }
  }
}"""
HEADERS = {"X-Shopify-Access-Token": "shpat_demo_anything"}


def basic_input(code: str) -> dict[str, Any]:
    return {
        "basicCodeDiscount": {
            "title": "5 USD off (500 points)",
            "code": code,
            "startsAt": "2026-09-01T00:00:00Z",
            "customerSelection": {"customers": {"add": ["gid://shopify/Customer/7400000000001"]}},
            "customerGets": {
                "value": {"discountAmount": {"amount": "5.00"}},
                "items": {"all": True},
            },
            "appliesOncePerCustomer": True,
            "usageLimit": 1,
        }
    }


async def test_discount_code_basic_create_succeeds(client: httpx.AsyncClient) -> None:
    response = await client.post(
        GRAPHQL, json={"query": BASIC, "variables": basic_input("STAMP-5OFF-A1")}, headers=HEADERS
    )

    assert response.status_code == 200
    assert "stand-in" in response.headers[DEMO_HEADER]
    body = response.json()
    created = body["data"]["discountCodeBasicCreate"]
    assert created["userErrors"] == []
    node = created["codeDiscountNode"]
    assert node["id"].startswith("gid://shopify/DiscountCodeNode/")
    assert node["codeDiscount"]["codes"]["nodes"][0]["code"] == "STAMP-5OFF-A1"
    assert node["codeDiscount"]["title"] == "5 USD off (500 points)"
    throttle = body["extensions"]["cost"]["throttleStatus"]
    assert set(throttle) == {"maximumAvailable", "currentlyAvailable", "restoreRate"}


async def test_free_shipping_create_succeeds(client: httpx.AsyncClient) -> None:
    variables = {"freeShippingCodeDiscount": {"title": "Free shipping", "code": "STAMP-SHIP-1"}}
    response = await client.post(
        GRAPHQL, json={"query": FREE_SHIPPING, "variables": variables}, headers=HEADERS
    )
    created = response.json()["data"]["discountCodeFreeShippingCreate"]
    assert created["userErrors"] == []
    assert created["codeDiscountNode"]["codeDiscount"]["__typename"] == "DiscountCodeFreeShipping"
    assert (
        created["codeDiscountNode"]["codeDiscount"]["codes"]["nodes"][0]["code"] == "STAMP-SHIP-1"
    )


async def test_a_repeated_code_is_a_user_error(client: httpx.AsyncClient) -> None:
    payload = {"query": BASIC, "variables": basic_input("STAMP-TWICE")}
    await client.post(GRAPHQL, json=payload, headers=HEADERS)

    again = (await client.post(GRAPHQL, json=payload, headers=HEADERS)).json()

    created = again["data"]["discountCodeBasicCreate"]
    assert created["codeDiscountNode"] is None
    assert created["userErrors"][0]["code"] == "TAKEN"
    assert created["userErrors"][0]["field"] == ["basicCodeDiscount", "code"]


async def test_a_blank_code_is_a_user_error(client: httpx.AsyncClient) -> None:
    response = await client.post(
        GRAPHQL, json={"query": BASIC, "variables": basic_input(" ")}, headers=HEADERS
    )
    assert response.json()["data"]["discountCodeBasicCreate"]["userErrors"][0]["code"] == "BLANK"


async def test_graphql_needs_an_access_token(client: httpx.AsyncClient) -> None:
    response = await client.post(GRAPHQL, json={"query": BASIC, "variables": basic_input("X")})
    assert response.status_code == 401
    assert "Invalid API key or access token" in response.json()["errors"]


async def test_other_queries_are_refused_as_graphql_errors(client: httpx.AsyncClient) -> None:
    response = await client.post(
        GRAPHQL, json={"query": "{ products(first: 1) { nodes { id } } }"}, headers=HEADERS
    )
    assert response.status_code == 200
    assert response.json()["errors"][0]["extensions"]["code"] == "undefinedField"


async def test_the_real_shop_query_reads_the_stand_in(state: State) -> None:
    # The install code's own client, pointed at the stand-in by SHOPIFY_ADMIN_URL.
    info = await service.fetch_shop_info(state, SHOP, "shpat_demo_anything")
    assert (info.name, info.currency_code, info.myshopify_domain) == (
        "Stamp Demo Store",
        "USD",
        SHOP,
    )


async def test_the_real_token_exchange_gets_an_expiring_token(state: State) -> None:
    grant = await tokens.request_token(
        state,
        SHOP,
        {
            "grant_type": service.TOKEN_EXCHANGE_GRANT,
            "subject_token": mint_session_token(state.settings),
            "subject_token_type": service.ID_TOKEN_TYPE,
            "requested_token_type": service.OFFLINE_TOKEN_TYPE,
            "expiring": "1",
        },
    )
    assert grant.access_token.startswith("shpat_demo_")
    assert grant.refresh_token
    assert grant.expires_in == 3600
    assert not service.missing_scopes(state.settings.SHOPIFY_SCOPES, grant.scope)
    refreshed = await tokens.request_token(
        state, SHOP, {"grant_type": "refresh_token", "refresh_token": grant.refresh_token}
    )
    assert refreshed.access_token != grant.access_token


async def test_token_requests_need_the_app_credentials(client: httpx.AsyncClient) -> None:
    response = await client.post(
        TOKEN, json={"client_id": "test-api-key", "client_secret": "nope", "code": "abc"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client"


async def test_token_exchange_refuses_a_forged_session_token(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    forged = mint_session_token(settings.model_copy(update={"SHOPIFY_API_SECRET": None}))
    response = await client.post(
        TOKEN,
        json={
            "client_id": settings.shopify_api_key,
            "client_secret": settings.shopify_api_secret,
            "grant_type": service.TOKEN_EXCHANGE_GRANT,
            "subject_token": forged,
        },
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_subject_token"


@pytest.mark.parametrize("path", [GRAPHQL, TOKEN, "/demo", "/demo/orders"])
async def test_nothing_of_the_demo_is_mounted_without_demo_mode(
    path: str, database_url: str, state: State
) -> None:
    plain = create_app(make_settings(database_url))
    transport = httpx.ASGITransport(app=_with_state(plain, state))
    async with httpx.AsyncClient(transport=transport, base_url="https://stamp.test") as http:
        response = await http.post(path, json={}, headers=HEADERS)
    assert response.status_code in {404, 405}, (response.headers, response.text[:300])
    assert DEMO_HEADER not in response.headers


async def test_the_redemption_client_creates_and_finds_codes_on_the_stand_in(
    state: State,
) -> None:
    # Stamp's own discount client (what redemption calls), pointed at the stand-in.
    from datetime import UTC, datetime
    from decimal import Decimal

    from app.integrations.shopify.admin import AdminClient
    from app.integrations.shopify.discounts import DiscountSpec, create_code, find_code

    async def token() -> str:
        return "shpat_demo_anything"

    client = AdminClient(state, SHOP, token)
    spec = DiscountSpec(
        code="STAMP-REDEEM-1",
        title="5 USD off",
        kind="fixed_amount",
        value=Decimal("5"),
        customer_gid="gid://shopify/Customer/7400000000001",
        minimum_order=None,
        starts_at=datetime(2026, 9, 1, tzinfo=UTC),
        ends_at=None,
    )
    shipping = DiscountSpec(
        code="STAMP-SHIP-2",
        title="Free shipping",
        kind="free_shipping",
        value=None,
        customer_gid=None,
        minimum_order=Decimal("20"),
        starts_at=datetime(2026, 9, 1, tzinfo=UTC),
        ends_at=None,
    )

    node_id = await create_code(client, spec)

    assert node_id.startswith("gid://shopify/DiscountCodeNode/")
    assert await find_code(client, "STAMP-REDEEM-1") == node_id
    assert await find_code(client, "NEVER-CREATED") is None
    assert (await create_code(client, shipping)).startswith("gid://shopify/DiscountCodeNode/")
