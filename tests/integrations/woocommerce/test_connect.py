"""Connecting a WooCommerce store: signed single-use state, one REST check, webhooks."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.crypto import Cipher
from app.integrations.woocommerce.connect import STATE_SALT
from app.models import Platform, Shop
from app.settings import Settings
from tests.builders import all_stored_text, row_counts
from tests.integrations.woocommerce.support import (
    CONSUMER_KEY,
    CONSUMER_SECRET,
    STORE,
    STORE_HOST,
)


async def start(client: httpx.AsyncClient, store_url: str = STORE + "/") -> dict[str, str]:
    response = await client.get("/woocommerce/connect", params={"store_url": store_url})
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == (
        f"{STORE}/wc-auth/v1/authorize"
    )
    return {key: values[0] for key, values in parse_qs(location.query).items()}


def callback_body(user_id: str) -> dict[str, Any]:
    return {
        "key_id": 7,
        "user_id": user_id,
        "consumer_key": CONSUMER_KEY,
        "consumer_secret": CONSUMER_SECRET,
        "key_permissions": "read_write",
    }


async def test_connect_stores_keys_encrypted_checks_once_and_creates_webhooks(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, store: respx.MockRouter
) -> None:
    # given the merchant starts connecting their store
    query = await start(client)
    assert query["app_name"] == "Stamp"
    assert query["scope"] == "read_write"
    assert query["return_url"] == "https://stamp.test/woocommerce/return"
    assert query["callback_url"] == "https://stamp.test/woocommerce/callback"

    # when WooCommerce posts the new keys with our user_id
    response = await client.post("/woocommerce/callback", json=callback_body(query["user_id"]))

    # then exactly 200, and the shop is stored with its currency
    assert response.status_code == 200
    await session.rollback()
    shop = (await session.execute(select(Shop))).scalar_one()
    session.expunge(shop)  # keep its values through the snapshot taken below
    assert (shop.platform, shop.domain, shop.currency, shop.status) == (
        Platform.woocommerce,
        STORE_HOST,
        "EUR",
        "installed",
    )
    # and the keys are encrypted at rest: no column holds them in the clear
    stored = await all_stored_text(session)
    assert CONSUMER_KEY.lower() not in stored
    assert CONSUMER_SECRET.lower() not in stored
    assert shop.access_token_enc is not None
    assert CONSUMER_KEY.encode() not in shop.access_token_enc
    cipher = Cipher.from_settings(settings)
    assert json.loads(cipher.decrypt(shop.access_token_enc)) == {
        "consumer_key": CONSUMER_KEY,
        "consumer_secret": CONSUMER_SECRET,
    }
    # and one REST check used HTTP Basic with the new keys
    check = store.routes[0]
    assert check.call_count == 1
    basic = base64.b64encode(f"{CONSUMER_KEY}:{CONSUMER_SECRET}".encode()).decode()
    assert check.calls[0].request.headers["authorization"] == f"Basic {basic}"
    # and the five webhooks point at this shop with its own secret
    assert shop.webhook_secret_enc is not None
    secret = cipher.decrypt(shop.webhook_secret_enc)
    created = [json.loads(call.request.content) for call in store.routes[2].calls]
    assert [w["topic"] for w in created] == [
        "order.created",
        "order.updated",
        "order.deleted",
        "order.restored",
        "customer.created",
    ]
    assert {w["delivery_url"] for w in created} == {
        f"https://stamp.test/webhooks/woocommerce/{shop.id}"
    }
    assert {w["secret"] for w in created} == {secret}
    assert secret.isalnum()
    assert len(secret) == 48


async def test_replayed_state_is_refused_and_writes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, store: respx.MockRouter
) -> None:
    query = await start(client)
    first = await client.post("/woocommerce/callback", json=callback_body(query["user_id"]))
    assert first.status_code == 200
    before = await row_counts(session)
    calls = len(store.calls)

    replay = await client.post("/woocommerce/callback", json=callback_body(query["user_id"]))

    assert replay.status_code == 401
    assert replay.json()["error"]["code"] == "invalid_state"
    assert await row_counts(session) == before
    assert len(store.calls) == calls


async def test_forged_state_is_refused_and_writes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, store: respx.MockRouter
) -> None:
    # given a state signed with someone else's key for a nonce that does not exist
    forged = URLSafeTimedSerializer("attacker-key", salt=STATE_SALT).dumps(
        {"nonce": "0" * 64, "store": STORE}
    )
    before = await row_counts(session)

    response = await client.post("/woocommerce/callback", json=callback_body(forged))

    assert response.status_code == 401
    assert await row_counts(session) == before
    assert store.calls.call_count == 0


@pytest.mark.parametrize(
    ("store_url", "code"),
    [
        ("https://127.0.0.1", "url_private"),
        ("https://localhost", "url_private"),
        ("https://169.254.169.254", "url_private"),
        ("https://10.0.0.8/shop", "url_private"),
        ("http://shop.example-store.com", "url_not_https"),
    ],
)
async def test_private_loopback_or_plain_http_store_urls_are_refused(
    client: httpx.AsyncClient, session: AsyncSession, store_url: str, code: str
) -> None:
    before = await row_counts(session)

    response = await client.get("/woocommerce/connect", params={"store_url": store_url})

    assert response.status_code == 422
    assert response.json()["error"]["code"] == code
    assert await row_counts(session) == before


async def test_keys_the_store_refuses_are_not_stored_and_the_state_survives(
    client: httpx.AsyncClient, session: AsyncSession, store: respx.MockRouter
) -> None:
    # given the store answers 401 to the check
    store.get("/settings/general").respond(401, json={"code": "woocommerce_rest_cannot_view"})
    query = await start(client)
    before = await row_counts(session)

    response = await client.post("/woocommerce/callback", json=callback_body(query["user_id"]))

    # then not 200 (WooCommerce deletes the key) and nothing is written
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "keys_rejected"
    assert await row_counts(session) == before


async def test_return_sends_the_merchant_back_to_the_plugin_settings(
    client: httpx.AsyncClient,
) -> None:
    query = await start(client)

    response = await client.get(
        "/woocommerce/return", params={"success": "1", "user_id": query["user_id"]}
    )

    assert response.status_code == 302
    assert response.headers["location"] == f"{STORE}/wp-admin/admin.php?page=stamp&connected=1"
