"""The subscriptions API with the default settings: the SSRF guard, validation, tenancy,
and the OpenAPI document. Every refusal leaves every table as it was."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import WebhookSubscription
from app.models.base import utcnow
from app.settings import Settings
from app.state import State
from tests.builders import api_key_for, create_shop, row_counts

URL = "/api/v1/webhook-subscriptions"


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("https://127.0.0.1/hook", "url_private"),
        ("https://10.0.0.7/hook", "url_private"),
        ("https://[::1]/hook", "url_private"),
        ("https://169.254.169.254/latest/meta-data", "url_private"),
        ("http://hooks.example.com/catch", "url_not_https"),
        ("https://hooks.example.com:99999/catch", "url_invalid"),
    ],
)
async def test_private_or_plain_http_urls_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, url: str, code: str
) -> None:
    # given a shop with an API key, and the SSRF guard on (the default)
    assert settings.ALLOW_PRIVATE_URLS is False
    shop = await create_shop(session, settings)
    headers = await api_key_for(session, shop)
    before = await row_counts(session)

    # when a subscription to a private or http URL is attempted
    response = await client.post(URL, json={"url": url, "events": ["*"]}, headers=headers)

    # then it is refused by name and no row changed
    assert response.status_code == 422
    assert response.json()["error"]["code"] == code
    assert await row_counts(session) == before


async def test_unknown_event_types_are_refused_with_the_valid_ones_named(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    headers = await api_key_for(session, shop)
    before = await row_counts(session)

    response = await client.post(
        URL, json={"url": "https://10.0.0.1/x", "events": ["points.stolen"]}, headers=headers
    )

    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "validation_failed",
        "message": "events: Value error, unknown event type 'points.stolen'; choose from "
        "member.created, points.earned, points.spent, reward.redeemed, tier.changed, "
        "referral.completed, points.expiring, member.winback_flagged",
    }
    assert await row_counts(session) == before


async def test_without_an_api_key_nothing_is_listed_or_created(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await create_shop(session, settings)
    before = await row_counts(session)

    listed = await client.get(URL)
    created = await client.post(URL, json={"url": "https://10.0.0.1/x", "events": ["*"]})

    assert (listed.status_code, created.status_code) == (401, 401)
    assert created.json()["error"]["code"] == "missing_api_key"
    assert await row_counts(session) == before


async def test_another_shops_subscription_cannot_be_seen_deleted_or_replayed(
    client: httpx.AsyncClient, session: AsyncSession, state: State, settings: Settings
) -> None:
    # given a subscription belonging to another shop
    other = await create_shop(session, settings, domain="other.myshopify.com")
    session.add(
        WebhookSubscription(
            shop_id=other.id,
            url="https://hooks.example.com/a",
            events=["points.earned"],
            secret_enc=state.cipher.encrypt("whsec_x"),
            created_at=utcnow(),
        )
    )
    await session.commit()
    mine = await create_shop(session, settings)
    headers = await api_key_for(session, mine)
    before = await row_counts(session)

    # when this shop lists, deletes and replays it
    listed = await client.get(URL, headers=headers)
    deleted = await client.delete(f"{URL}/1", headers=headers)
    log = await client.get(f"{URL}/1/deliveries", headers=headers)
    replay = await client.post(f"{URL}/1/deliveries/1/replay", headers=headers)
    junk = await client.delete(f"{URL}/abc", headers=headers)
    superscript = await client.delete(f"{URL}/\u00b2", headers=headers)

    # then it is invisible and untouched
    assert listed.json() == {"data": [], "next_cursor": None}
    assert [r.status_code for r in (deleted, log, replay, junk, superscript)] == [404] * 5
    assert deleted.json()["error"]["code"] == "subscription_not_found"
    assert await row_counts(session) == before


async def test_the_openapi_document_describes_the_subscription_endpoints(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/api/v1/openapi.json")).json()

    paths = document["paths"]
    assert set(paths[URL]) == {"get", "post"}
    assert set(paths[URL + "/{subscription_id}"]) == {"delete"}
    assert set(paths[URL + "/{subscription_id}/deliveries"]) == {"get"}
    assert set(paths[URL + "/{subscription_id}/deliveries/{delivery_id}/replay"]) == {"post"}
    assert set(paths[URL + "/{subscription_id}/enable"]) == {"post"}
    created = document["components"]["schemas"]["SubscriptionCreated"]
    assert {"id", "url", "events", "status", "secret"} <= set(created["properties"])
