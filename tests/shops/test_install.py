"""Authorization-code install: /auth/shopify → Shopify's consent → /auth/shopify/callback."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import respx
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from app.models import OAuthState, ProgramVersion, Shop, ShopStatus
from app.models.base import utcnow
from app.settings import Settings
from app.shops import service
from app.state import State
from tests.shops.support import (
    ACCESS_TOKEN,
    GRANTED_SCOPES,
    REFRESH_TOKEN,
    SHOP,
    begin_install,
    callback_query,
    counts,
    encode_host,
    grant,
    mock_shopify,
    query_of,
    signed,
)

CALLBACK = "/auth/shopify/callback"
CODE = "0907a61c0c8d55e99db179b68161bc00"
EMBEDDED_ADMIN = "https://admin.shopify.com/store/some-shop/apps/test-api-key"


async def assert_refused(
    client: httpx.AsyncClient,
    state: State,
    shopify: respx.MockRouter,
    params: list[tuple[str, str]],
    status: int,
    code: str,
) -> None:
    """The callback is refused with `status`/`code`, Shopify is not asked, no row changes."""
    before = await counts(state)

    response = await client.get(CALLBACK, params=params)

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert await counts(state) == before
    assert shopify.routes["token"].call_count == 0


async def test_start_redirects_to_shopify_consent_with_a_signed_single_use_state(
    client: httpx.AsyncClient, state: State, settings: Settings
) -> None:
    # when a merchant starts an install
    response = await client.get("/auth/shopify", params={"shop": SHOP})

    # then they go to the shop's consent screen with our key, scopes, callback and state
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.split("?")[0] == "https://some-shop.myshopify.com/admin/oauth/authorize"
    query = query_of(location)
    assert sorted(query) == ["client_id", "redirect_uri", "scope", "state"]
    assert query["client_id"] == "test-api-key"
    assert query["scope"] == settings.SHOPIFY_SCOPES
    assert query["redirect_uri"] == "https://stamp.test/auth/shopify/callback"
    nonce, state_shop = service.read_state(settings, query["state"])
    assert state_shop == SHOP
    # and exactly one nonce is recorded for that shop
    async with state.sessionmaker() as session:
        rows = (await session.execute(select(OAuthState))).scalars().all()
    assert [(row.nonce, row.shop_domain) for row in rows] == [(nonce, SHOP)]


async def test_start_checks_a_launch_hmac_when_one_is_sent(
    client: httpx.AsyncClient, state: State, settings: Settings
) -> None:
    # given a launch query whose hmac is wrong, and one whose hmac is right
    good = signed(settings, [("shop", SHOP), ("timestamp", str(int(time.time())))])
    bad = [*good[:-1], ("hmac", "0" * 64)]

    refused = await client.get("/auth/shopify", params=bad)
    accepted = await client.get("/auth/shopify", params=good)

    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_hmac"
    assert accepted.status_code == 302
    assert (await counts(state))["oauth_states"] == 1


@pytest.mark.parametrize(
    "shop", ["evil.com", "shop.myshopify.com.evil.com", "", "-x.myshopify.com"]
)
async def test_start_refuses_a_shop_outside_myshopify_and_writes_nothing(
    client: httpx.AsyncClient, state: State, shop: str
) -> None:
    before = await counts(state)

    response = await client.get("/auth/shopify", params={"shop": shop})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_shop_domain"
    assert await counts(state) == before


async def test_install_stores_encrypted_tokens_default_program_and_opens_embedded_admin(
    client: httpx.AsyncClient, state: State, settings: Settings, shopify: respx.MockRouter
) -> None:
    # given Shopify that grants an expiring offline token and describes a JPY shop
    mock_shopify(shopify, settings)
    oauth_state = await begin_install(client)
    started = utcnow()

    # when Shopify redirects the merchant back with a code
    response = await client.get(CALLBACK, params=callback_query(settings, oauth_state, code=CODE))

    # then the merchant lands in Stamp inside their Shopify admin
    finished = utcnow()
    assert response.status_code == 302
    assert response.headers["location"] == EMBEDDED_ADMIN
    # and the code was traded for an expiring token, exactly as Shopify expects
    token_request = shopify.routes["token"].calls.last.request
    assert json.loads(token_request.content) == {
        "client_id": "test-api-key",
        "client_secret": settings.shopify_api_secret,
        "code": CODE,
        "expiring": "1",
    }
    # and the shop was read once with the new token
    assert shopify.routes["graphql"].call_count == 1
    graphql_request = shopify.routes["graphql"].calls.last.request
    assert graphql_request.headers["X-Shopify-Access-Token"] == ACCESS_TOKEN
    assert json.loads(graphql_request.content) == {
        "query": "{ shop { name email currencyCode ianaTimezone myshopifyDomain id } }"
    }
    # and the shop row is installed with its details and encrypted tokens
    async with state.sessionmaker() as session:
        shop = (await session.execute(select(Shop))).scalar_one()
        raw_access, raw_refresh = (
            await session.execute(text("SELECT access_token_enc, refresh_token_enc FROM shops"))
        ).one()
        programs = (await session.execute(select(ProgramVersion))).scalars().all()
        nonces = await session.scalar(select(func.count()).select_from(OAuthState))
    assert (shop.domain, shop.status, shop.name, shop.email) == (
        SHOP,
        ShopStatus.installed,
        "Some Shop",
        "owner@some-shop.example",
    )
    assert (shop.currency, shop.iana_timezone, shop.platform_shop_id, shop.scopes) == (
        "JPY",
        "Asia/Tokyo",
        "gid://shopify/Shop/548380009",
        GRANTED_SCOPES,
    )
    assert ACCESS_TOKEN.encode() not in bytes(raw_access)
    assert REFRESH_TOKEN.encode() not in bytes(raw_refresh)
    assert state.cipher.decrypt(bytes(raw_access)) == ACCESS_TOKEN
    assert state.cipher.decrypt(bytes(raw_refresh)) == REFRESH_TOKEN
    assert shop.access_token_expires_at is not None
    assert shop.refresh_token_expires_at is not None
    assert shop.installed_at is not None
    assert started + timedelta(seconds=3600) <= shop.access_token_expires_at
    assert shop.access_token_expires_at <= finished + timedelta(seconds=3600)
    assert started + timedelta(days=90) <= shop.refresh_token_expires_at
    assert shop.refresh_token_expires_at <= finished + timedelta(days=90)
    assert started <= shop.installed_at <= finished
    assert shop.uninstalled_at is None
    # and the default program exists, in the shop's currency, and the nonce is used up
    assert [(p.shop_id, p.version, p.config["currency"]) for p in programs] == [(shop.id, 1, "JPY")]
    assert nonces == 0


@pytest.mark.sqlite_only
async def test_sqlite_file_never_holds_tokens_in_plaintext(
    client: httpx.AsyncClient,
    state: State,
    settings: Settings,
    shopify: respx.MockRouter,
    database_url: str,
) -> None:
    # given a completed install
    mock_shopify(shopify, settings)
    oauth_state = await begin_install(client)
    response = await client.get(CALLBACK, params=callback_query(settings, oauth_state))
    assert response.status_code == 302

    # when we read the database file and its write-ahead log as raw bytes
    path = Path(str(make_url(database_url).database))
    stored = b"".join(
        candidate.read_bytes()
        for candidate in (path, path.with_name(path.name + "-wal"))
        if candidate.exists()
    )

    # then the shop's details are there (we read the right bytes) but neither token is
    assert b"owner@some-shop.example" in stored
    assert ACCESS_TOKEN.encode() not in stored
    assert REFRESH_TOKEN.encode() not in stored


async def test_reinstall_reactivates_the_same_shop_and_keeps_its_program(
    client: httpx.AsyncClient, state: State, settings: Settings, shopify: respx.MockRouter
) -> None:
    # given a shop that installed, then uninstalled Stamp
    mock_shopify(shopify, settings)
    first_state = await begin_install(client)
    assert (
        await client.get(CALLBACK, params=callback_query(settings, first_state))
    ).status_code == 302
    async with state.sessionmaker() as session:
        shop = (await session.execute(select(Shop))).scalar_one()
        shop_id = shop.id
        shop.status = ShopStatus.uninstalled
        shop.uninstalled_at = utcnow()
        shop.history_imported_at = utcnow()
        await session.commit()
    shopify.routes["token"].mock(
        return_value=httpx.Response(
            200, json=grant(access_token="shpat_second", refresh_token="shprt_second")
        )
    )

    # when the merchant installs again
    second_state = await begin_install(client)
    response = await client.get(CALLBACK, params=callback_query(settings, second_state))

    # then the same row is installed again with the new tokens and the old program
    assert response.status_code == 302
    async with state.sessionmaker() as session:
        shops = (await session.execute(select(Shop))).scalars().all()
        versions = await session.scalar(select(func.count()).select_from(ProgramVersion))
    assert [(s.id, s.status, s.uninstalled_at) for s in shops] == [
        (shop_id, ShopStatus.installed, None)
    ]
    # and its history import is due again (the sweep resends it if the job is lost)
    assert shops[0].history_imported_at is None
    assert shops[0].access_token_enc is not None
    assert shops[0].refresh_token_enc is not None
    assert state.cipher.decrypt(shops[0].access_token_enc) == "shpat_second"
    assert state.cipher.decrypt(shops[0].refresh_token_enc) == "shprt_second"
    assert versions == 1


async def test_callback_follows_the_host_shopify_sends(
    client: httpx.AsyncClient, settings: Settings, shopify: respx.MockRouter
) -> None:
    mock_shopify(shopify, settings)
    oauth_state = await begin_install(client)
    host = encode_host("admin.shopify.com/store/some-shop-handle")

    response = await client.get(CALLBACK, params=callback_query(settings, oauth_state, host=host))

    assert response.status_code == 302
    assert response.headers["location"] == (
        "https://admin.shopify.com/store/some-shop-handle/apps/test-api-key"
    )


async def test_callback_ignores_a_host_outside_shopify_admin(
    client: httpx.AsyncClient, settings: Settings, shopify: respx.MockRouter
) -> None:
    mock_shopify(shopify, settings)
    oauth_state = await begin_install(client)
    host = encode_host("evil.example/store/x")

    response = await client.get(CALLBACK, params=callback_query(settings, oauth_state, host=host))

    assert response.status_code == 302
    assert response.headers["location"] == EMBEDDED_ADMIN


async def test_callback_with_a_bad_hmac_is_refused(
    client: httpx.AsyncClient, state: State, settings: Settings, shopify: respx.MockRouter
) -> None:
    mock_shopify(shopify, settings)
    oauth_state = await begin_install(client)
    params = callback_query(settings, oauth_state)
    tampered = [("code", "ffffffffffffffffffffffffffffffff"), *params[1:]]

    await assert_refused(client, state, shopify, tampered, 401, "invalid_hmac")


async def test_callback_older_than_24_hours_is_refused(
    client: httpx.AsyncClient, state: State, settings: Settings, shopify: respx.MockRouter
) -> None:
    mock_shopify(shopify, settings)
    oauth_state = await begin_install(client)
    params = callback_query(settings, oauth_state, timestamp=int(time.time()) - 25 * 3600)

    await assert_refused(client, state, shopify, params, 400, "stale_request")


async def test_callback_from_10_minutes_in_the_future_is_refused(
    client: httpx.AsyncClient, state: State, settings: Settings, shopify: respx.MockRouter
) -> None:
    mock_shopify(shopify, settings)
    oauth_state = await begin_install(client)
    params = callback_query(settings, oauth_state, timestamp=int(time.time()) + 600)

    await assert_refused(client, state, shopify, params, 400, "timestamp_in_future")


async def test_callback_with_a_forged_state_is_refused(
    client: httpx.AsyncClient, state: State, settings: Settings, shopify: respx.MockRouter
) -> None:
    # given a real nonce, but a state signed with somebody else's key
    mock_shopify(shopify, settings)
    nonce, _ = service.read_state(settings, await begin_install(client))
    forged = URLSafeTimedSerializer(
        "not-our-secret-key-0123456789abcdef", salt="shopify-oauth-state"
    ).dumps({"nonce": nonce, "shop": SHOP})

    await assert_refused(
        client, state, shopify, callback_query(settings, forged), 400, "invalid_state"
    )


async def test_callback_with_a_state_older_than_10_minutes_is_refused(
    client: httpx.AsyncClient, state: State, settings: Settings, shopify: respx.MockRouter
) -> None:
    class ElevenMinutesAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 11 * 60

    mock_shopify(shopify, settings)
    nonce, _ = service.read_state(settings, await begin_install(client))
    old = URLSafeTimedSerializer(
        settings.secret_key, salt="shopify-oauth-state", signer=ElevenMinutesAgo
    ).dumps({"nonce": nonce, "shop": SHOP})

    await assert_refused(
        client, state, shopify, callback_query(settings, old), 400, "state_expired"
    )


async def test_replayed_callback_is_refused(
    client: httpx.AsyncClient, state: State, settings: Settings, shopify: respx.MockRouter
) -> None:
    # given a callback that already installed the shop
    mock_shopify(shopify, settings)
    params = callback_query(settings, await begin_install(client))
    assert (await client.get(CALLBACK, params=params)).status_code == 302
    before = await counts(state)

    # when the very same callback comes again
    response = await client.get(CALLBACK, params=params)

    # then it is refused, Shopify is not asked again, and nothing changes
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "state_used"
    assert await counts(state) == before
    assert shopify.routes["token"].call_count == 1


async def test_concurrent_replays_install_exactly_once(
    client: httpx.AsyncClient, state: State, settings: Settings, shopify: respx.MockRouter
) -> None:
    mock_shopify(shopify, settings)
    params = callback_query(settings, await begin_install(client))

    responses = await asyncio.gather(*(client.get(CALLBACK, params=params) for _ in range(2)))

    assert sorted(r.status_code for r in responses) == [302, 400]
    refused = next(r for r in responses if r.status_code == 400)
    assert refused.json()["error"]["code"] == "state_used"
    assert shopify.routes["token"].call_count == 1
    after = await counts(state)
    assert (after["shops"], after["oauth_states"], after["program_versions"]) == (1, 0, 1)


async def test_state_issued_for_another_shop_is_refused(
    client: httpx.AsyncClient, state: State, settings: Settings, shopify: respx.MockRouter
) -> None:
    mock_shopify(shopify, settings)
    other_state = await begin_install(client, "other-shop.myshopify.com")

    await assert_refused(
        client,
        state,
        shopify,
        callback_query(settings, other_state, shop=SHOP),
        400,
        "state_shop_mismatch",
    )


@pytest.mark.parametrize("shop", ["evil.com", "shop.myshopify.com.evil.com"])
async def test_callback_for_a_shop_outside_myshopify_is_refused(
    client: httpx.AsyncClient,
    state: State,
    settings: Settings,
    shopify: respx.MockRouter,
    shop: str,
) -> None:
    mock_shopify(shopify, settings)
    oauth_state = await begin_install(client)

    await assert_refused(
        client,
        state,
        shopify,
        callback_query(settings, oauth_state, shop=shop),
        400,
        "invalid_shop_domain",
    )


async def test_code_exchange_refused_by_shopify_keeps_the_nonce(
    client: httpx.AsyncClient, state: State, settings: Settings, shopify: respx.MockRouter
) -> None:
    # given Shopify that refuses the code
    mock_shopify(shopify, settings)
    shopify.routes["token"].mock(
        return_value=httpx.Response(
            400,
            json={"error": "invalid_request", "error_description": "The code was already used"},
        )
    )
    params = callback_query(settings, await begin_install(client))
    before = await counts(state)

    # when the callback arrives
    response = await client.get(CALLBACK, params=params)

    # then the merchant gets a clear 400 and nothing is written or consumed
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "code_exchange_failed",
        "message": "Shopify did not accept the authorization code: Shopify refused the token "
        f"request for {SHOP} with 400: The code was already used",
    }
    assert await counts(state) == before
    assert shopify.routes["graphql"].call_count == 0
    # and since the nonce survived, the same callback works once Shopify accepts the code
    shopify.routes["token"].mock(return_value=httpx.Response(200, json=grant()))
    assert (await client.get(CALLBACK, params=params)).status_code == 302


async def test_shopify_down_during_code_exchange_answers_503_and_writes_nothing(
    client: httpx.AsyncClient, state: State, settings: Settings, shopify: respx.MockRouter
) -> None:
    mock_shopify(shopify, settings)
    shopify.routes["token"].mock(return_value=httpx.Response(502))
    params = callback_query(settings, await begin_install(client))
    before = await counts(state)

    response = await client.get(CALLBACK, params=params)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "shopify_unavailable"
    assert await counts(state) == before


async def test_grant_missing_a_required_scope_is_refused_and_writes_nothing(
    client: httpx.AsyncClient, state: State, settings: Settings, shopify: respx.MockRouter
) -> None:
    mock_shopify(shopify, settings)
    shopify.routes["token"].mock(
        return_value=httpx.Response(200, json=grant(scope="read_customers,read_orders"))
    )
    params = callback_query(settings, await begin_install(client))
    before = await counts(state)

    response = await client.get(CALLBACK, params=params)

    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "missing_scopes",
        "message": "Shopify granted fewer permissions than Stamp needs; missing: "
        "write_app_proxy, write_customers, write_discounts",
    }
    assert await counts(state) == before
    assert shopify.routes["graphql"].call_count == 0


def test_write_scope_covers_its_read_scope() -> None:
    assert service.missing_scopes(
        "read_orders,write_discounts", "write_orders,write_discounts"
    ) == (frozenset())
    assert service.missing_scopes("write_orders", "read_orders") == frozenset({"write_orders"})
