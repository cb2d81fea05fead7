"""Access-token refresh: a new pair before expiry, a final 401, retryable outages."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
import respx
from sqlalchemy import select

from app.models import Shop, ShopStatus
from app.models.base import utcnow
from app.settings import Settings
from app.shops import tokens
from app.state import State
from tests.shops.support import SHOP, TOKEN_PATH, counts, grant

OLD_ACCESS = "shpat_old_0123456789abcdef"
OLD_REFRESH = "shprt_old_0123456789abcdef"
NEW_ACCESS = "shpat_new_fedcba9876543210"
NEW_REFRESH = "shprt_new_fedcba9876543210"
TOKEN_URL = f"https://{SHOP}{TOKEN_PATH}"


async def installed_shop(
    state: State,
    *,
    access_expires_in: timedelta | None,
    refresh_expires_in: timedelta | None = timedelta(days=60),
    refresh_token: str | None = OLD_REFRESH,
) -> int:
    now = utcnow()
    async with state.sessionmaker() as session:
        shop = Shop(
            domain=SHOP,
            name="Some Shop",
            status=ShopStatus.installed,
            installed_at=now,
            access_token_enc=state.cipher.encrypt(OLD_ACCESS),
            access_token_expires_at=now + access_expires_in if access_expires_in else None,
            refresh_token_enc=state.cipher.encrypt(refresh_token) if refresh_token else None,
            refresh_token_expires_at=now + refresh_expires_in if refresh_expires_in else None,
        )
        session.add(shop)
        await session.commit()
        return shop.id


async def stored_tokens(state: State) -> tuple[str | None, str | None]:
    async with state.sessionmaker() as session:
        shop = (await session.execute(select(Shop))).scalar_one()
    return (
        state.cipher.decrypt(shop.access_token_enc) if shop.access_token_enc else None,
        state.cipher.decrypt(shop.refresh_token_enc) if shop.refresh_token_enc else None,
    )


async def call_access_token(state: State, shop_id: int) -> str:
    """What other code does: fetch the token inside its own unit of work, then commit."""
    async with state.sessionmaker() as session:
        shop = await session.get(Shop, shop_id)
        assert shop is not None
        token = await tokens.access_token(state, session, shop)
        await session.commit()
    return token


async def test_token_far_from_expiry_is_returned_without_asking_shopify(
    state: State, shopify: respx.MockRouter
) -> None:
    shop_id = await installed_shop(state, access_expires_in=timedelta(minutes=30))
    route = shopify.post(TOKEN_URL)

    assert await call_access_token(state, shop_id) == OLD_ACCESS
    assert route.call_count == 0


async def test_non_expiring_token_is_returned_as_is(
    state: State, shopify: respx.MockRouter
) -> None:
    shop_id = await installed_shop(
        state, access_expires_in=None, refresh_expires_in=None, refresh_token=None
    )
    route = shopify.post(TOKEN_URL)

    assert await call_access_token(state, shop_id) == OLD_ACCESS
    assert route.call_count == 0


async def test_token_expiring_within_5_minutes_is_refreshed_and_the_new_pair_stored(
    state: State, settings: Settings, shopify: respx.MockRouter
) -> None:
    # given a token with 4 minutes left and Shopify ready to refresh it
    shop_id = await installed_shop(state, access_expires_in=timedelta(minutes=4))
    route = shopify.post(TOKEN_URL).mock(
        return_value=httpx.Response(
            200, json=grant(access_token=NEW_ACCESS, refresh_token=NEW_REFRESH)
        )
    )
    started = utcnow()

    # when code that calls the Admin API asks for the token
    token = await call_access_token(state, shop_id)

    # then it gets the new token, refreshed with exactly the documented request
    finished = utcnow()
    assert token == NEW_ACCESS
    assert route.call_count == 1
    assert json.loads(route.calls.last.request.content) == {
        "client_id": "test-api-key",
        "client_secret": settings.shopify_api_secret,
        "grant_type": "refresh_token",
        "refresh_token": OLD_REFRESH,
    }
    # and the whole new pair is stored, encrypted, with both new expiries
    assert await stored_tokens(state) == (NEW_ACCESS, NEW_REFRESH)
    async with state.sessionmaker() as session:
        shop = (await session.execute(select(Shop))).scalar_one()
    assert shop.access_token_expires_at is not None
    assert shop.refresh_token_expires_at is not None
    assert started + timedelta(hours=1) <= shop.access_token_expires_at
    assert shop.access_token_expires_at <= finished + timedelta(hours=1)
    assert started + timedelta(days=90) <= shop.refresh_token_expires_at
    assert shop.refresh_token_expires_at <= finished + timedelta(days=90)
    # and the next call uses the stored token without another refresh
    assert await call_access_token(state, shop_id) == NEW_ACCESS
    assert route.call_count == 1


async def test_refresh_refused_with_401_is_final_and_changes_nothing(
    state: State, shopify: respx.MockRouter
) -> None:
    # given a refresh token Shopify no longer accepts
    shop_id = await installed_shop(state, access_expires_in=timedelta(minutes=1))
    shopify.post(TOKEN_URL).mock(
        return_value=httpx.Response(
            401, json={"errors": "This request requires an active refresh_token"}
        )
    )
    before = await counts(state)

    # when the token is asked for
    with pytest.raises(tokens.ReauthorizationRequired) as raised:
        await call_access_token(state, shop_id)

    # then the error is final and says why, and the shop row is untouched
    assert raised.value.retryable is False
    assert raised.value.code == "shop_reauthorization_required"
    assert raised.value.message == (
        f"Shopify refused to refresh the token of {SHOP} (401); "
        "the merchant must open Stamp again to reauthorize it"
    )
    assert await counts(state) == before
    assert await stored_tokens(state) == (OLD_ACCESS, OLD_REFRESH)
    async with state.sessionmaker() as session:
        shop = (await session.execute(select(Shop))).scalar_one()
    assert shop.status == ShopStatus.installed


@pytest.mark.parametrize(
    "outage",
    [
        httpx.Response(500),
        httpx.Response(503),
        httpx.Response(429, headers={"Retry-After": "2"}),
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
    ],
    ids=["500", "503", "429", "connect-error", "timeout"],
)
async def test_refresh_during_an_outage_raises_a_retryable_error(
    state: State, shopify: respx.MockRouter, outage: httpx.Response | Exception
) -> None:
    shop_id = await installed_shop(state, access_expires_in=timedelta(minutes=2))
    route = shopify.post(TOKEN_URL)
    if isinstance(outage, Exception):
        route.mock(side_effect=outage)
    else:
        route.mock(return_value=outage)

    with pytest.raises(tokens.ShopifyUnavailable) as raised:
        await call_access_token(state, shop_id)

    assert raised.value.retryable is True
    assert raised.value.code == "shopify_unavailable"
    assert await stored_tokens(state) == (OLD_ACCESS, OLD_REFRESH)


async def test_expired_refresh_token_needs_reauthorization_without_calling_shopify(
    state: State, shopify: respx.MockRouter
) -> None:
    shop_id = await installed_shop(
        state, access_expires_in=timedelta(minutes=-5), refresh_expires_in=timedelta(days=-1)
    )
    route = shopify.post(TOKEN_URL)

    with pytest.raises(tokens.ReauthorizationRequired):
        await call_access_token(state, shop_id)

    assert route.call_count == 0
