"""Admin GraphQL client: cost-based backoff on throttling, clear errors, fresh tokens."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncSession

from app.integrations.shopify.admin import (
    AdminClient,
    AdminError,
    AdminUnavailable,
    GraphQLErrors,
    UserErrors,
    client_for_shop,
    legacy_id,
    throttle_wait,
)
from app.settings import Settings
from app.state import State
from tests.builders import DOMAIN, create_shop

TOKEN = "shpat_admin_test_0123456789"
URL = f"https://{DOMAIN}/admin/api/2026-07/graphql.json"
QUERY = "{ shop { name } }"
OK = {"data": {"shop": {"name": "Some Shop"}}}


def throttled(available: float, restore_rate: float, requested: int) -> dict[str, Any]:
    return {
        "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
        "extensions": {
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": None,
                "throttleStatus": {
                    "maximumAvailable": 2000.0,
                    "currentlyAvailable": available,
                    "restoreRate": restore_rate,
                },
            }
        },
    }


class Sleeps:
    """Stands in for asyncio.sleep: records the waits, never waits."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def shopify() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        yield router


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(state: State, sleeps: Sleeps) -> AdminClient:
    async def token() -> str:
        return TOKEN

    return AdminClient(state=state, shop_domain=DOMAIN, token=token, sleep=sleeps)


async def test_throttled_then_success_waits_for_the_bucket_and_retries(
    shopify: respx.MockRouter, client: AdminClient, sleeps: Sleeps
) -> None:
    # given Shopify throttles the first request: 10 points left, 110 needed, 50 restored/s
    route = shopify.post(URL).mock(
        side_effect=[
            httpx.Response(200, json=throttled(10.0, 50.0, 110)),
            httpx.Response(200, json=OK),
        ]
    )

    # when the query runs
    data = await client.execute(QUERY, {"first": 1})

    # then it waited (110 - 10) / 50 = 2 s, retried once, and returned the data
    assert data == {"shop": {"name": "Some Shop"}}
    assert sleeps.calls == [2.0]
    assert route.call_count == 2
    sent = route.calls[1].request
    assert sent.headers["X-Shopify-Access-Token"] == TOKEN
    assert json.loads(sent.content) == {"query": QUERY, "variables": {"first": 1}}


async def test_http_429_honours_retry_after(
    shopify: respx.MockRouter, client: AdminClient, sleeps: Sleeps
) -> None:
    route = shopify.post(URL).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "3"}, text="Too Many Requests"),
            httpx.Response(200, json=OK),
        ]
    )

    assert await client.execute(QUERY) == {"shop": {"name": "Some Shop"}}

    assert sleeps.calls == [3.0]
    assert route.call_count == 2


async def test_http_429_without_retry_after_uses_the_reported_cost(
    shopify: respx.MockRouter, client: AdminClient, sleeps: Sleeps
) -> None:
    shopify.post(URL).mock(
        side_effect=[
            httpx.Response(429, json=throttled(0.0, 100.0, 250)),
            httpx.Response(200, json=OK),
        ]
    )

    await client.execute(QUERY)

    assert sleeps.calls == [2.5]


async def test_throttled_on_every_attempt_gives_up_retryably(
    shopify: respx.MockRouter, client: AdminClient, sleeps: Sleeps
) -> None:
    route = shopify.post(URL).mock(
        return_value=httpx.Response(200, json=throttled(0.0, 100.0, 100))
    )

    with pytest.raises(AdminUnavailable) as raised:
        await client.execute(QUERY)

    assert raised.value.retryable is True
    assert "throttled" in raised.value.message
    assert route.call_count == client.max_attempts
    assert sleeps.calls == [1.0] * (client.max_attempts - 1)


async def test_user_errors_raise_with_shopify_words(
    shopify: respx.MockRouter, client: AdminClient, sleeps: Sleeps
) -> None:
    shopify.post(URL).mock(
        return_value=httpx.Response(
            200,
            json={
                "data": {
                    "bulkOperationRunQuery": {
                        "bulkOperation": None,
                        "userErrors": [
                            {
                                "field": ["query"],
                                "message": "A bulk query operation is already in progress",
                                "code": "OPERATION_IN_PROGRESS",
                            }
                        ],
                    }
                }
            },
        )
    )

    with pytest.raises(UserErrors) as raised:
        await client.execute('mutation { bulkOperationRunQuery(query: "") { userErrors } }')

    assert raised.value.message == (
        "Shopify refused bulkOperationRunQuery: "
        "query: A bulk query operation is already in progress"
    )
    assert raised.value.mutation == "bulkOperationRunQuery"
    assert raised.value.errors[0]["code"] == "OPERATION_IN_PROGRESS"
    assert sleeps.calls == []


async def test_graphql_errors_raise_without_retrying(
    shopify: respx.MockRouter, client: AdminClient, sleeps: Sleeps
) -> None:
    route = shopify.post(URL).mock(
        return_value=httpx.Response(
            200,
            json={
                "errors": [
                    {
                        "message": "Field 'nope' doesn't exist on type 'Shop'",
                        "extensions": {"code": "undefinedField"},
                    }
                ]
            },
        )
    )

    with pytest.raises(GraphQLErrors) as raised:
        await client.execute("{ shop { nope } }")

    assert raised.value.message == (
        f"Shopify rejected the query for {DOMAIN}: Field 'nope' doesn't exist on type 'Shop'"
    )
    assert route.call_count == 1
    assert sleeps.calls == []


async def test_revoked_token_is_a_final_error(
    shopify: respx.MockRouter, client: AdminClient, sleeps: Sleeps
) -> None:
    shopify.post(URL).mock(
        return_value=httpx.Response(
            401, json={"errors": "[API] Invalid API key or access token (unrecognized login)"}
        )
    )

    with pytest.raises(AdminError) as raised:
        await client.execute(QUERY)

    assert not isinstance(raised.value, AdminUnavailable)
    assert raised.value.retryable is False
    assert raised.value.message.startswith(f"Shopify answered 401 for {DOMAIN}")
    assert sleeps.calls == []


async def test_server_errors_and_network_failures_are_retried(
    shopify: respx.MockRouter, client: AdminClient, sleeps: Sleeps
) -> None:
    route = shopify.post(URL).mock(
        side_effect=[
            httpx.Response(503, text="unavailable"),
            httpx.ConnectError("connection refused"),
            httpx.Response(200, json=OK),
        ]
    )

    assert await client.execute(QUERY) == {"shop": {"name": "Some Shop"}}

    assert sleeps.calls == [1.0, 2.0]
    assert route.call_count == 3


async def test_client_for_shop_sends_the_shops_stored_token(
    shopify: respx.MockRouter, state: State, session: AsyncSession, settings: Settings
) -> None:
    # given an installed shop whose token is stored encrypted
    shop = await create_shop(session, settings, access_token=TOKEN)
    route = shopify.post(URL).mock(return_value=httpx.Response(200, json=OK))

    # when a client for it runs a query
    client = await client_for_shop(state, shop.id)
    await client.execute(QUERY)

    # then Shopify received the decrypted token
    assert route.calls[0].request.headers["X-Shopify-Access-Token"] == TOKEN


def test_legacy_id_turns_global_ids_into_webhook_ids() -> None:
    assert legacy_id("gid://shopify/Order/5512345678901") == "5512345678901"
    assert legacy_id("gid://shopify/Customer/42?from=bulk") == "42"
    with pytest.raises(ValueError, match="not a Shopify global id"):
        legacy_id("5512345678901")
    with pytest.raises(ValueError, match="numeric id"):
        legacy_id("gid://shopify/Order/abc")


def test_throttle_wait_is_bounded() -> None:
    assert throttle_wait(throttled(1000.0, 50.0, 10), 1) == 0.5
    assert throttle_wait(throttled(0.0, 1.0, 1000), 1) == 60.0
    assert throttle_wait(None, 3) == 4.0
    assert throttle_wait({"extensions": {"cost": {"requestedQueryCost": 5}}}, 1) == 1.0
