"""The embedded admin: token exchange on embedded loads, the bounce page, session auth."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import httpx
import pytest
import respx
from sqlalchemy import select
from starlette.requests import Request

from app.admin.auth import RETRY_HEADER, InvalidSessionToken, require_shop
from app.models import ProgramVersion, Shop, ShopStatus
from app.models.base import utcnow
from app.settings import Settings
from app.state import State
from tests.shops.support import (
    ACCESS_TOKEN,
    REFRESH_TOKEN,
    SHOP,
    WHOAMI,
    counts,
    embedded_query,
    encode_host,
    mock_shopify,
    query_of,
    session_token,
    signed,
)

CSP = "frame-ancestors https://some-shop.myshopify.com https://admin.shopify.com;"
APP_BRIDGE = (
    '<script src="https://cdn.shopify.com/shopifycloud/app-bridge.js"'
    ' data-api-key="test-api-key"></script>'
)


async def add_shop(
    state: State,
    *,
    name: str = "Some Shop",
    status: str = ShopStatus.installed,
    access_expires_in: timedelta | None = timedelta(hours=1),
) -> int:
    now = utcnow()
    async with state.sessionmaker() as session:
        shop = Shop(
            domain=SHOP,
            name=name,
            status=status,
            installed_at=now,
            uninstalled_at=now if status == ShopStatus.uninstalled else None,
            access_token_enc=state.cipher.encrypt("shpat_existing"),
            access_token_expires_at=now + access_expires_in if access_expires_in else None,
        )
        session.add(shop)
        await session.commit()
        return shop.id


@pytest.mark.parametrize("path", ["/", "/admin"])
async def test_first_embedded_load_installs_the_shop_by_token_exchange(
    client: httpx.AsyncClient,
    state: State,
    settings: Settings,
    shopify: respx.MockRouter,
    path: str,
) -> None:
    # given a shop Stamp has never seen, opening the app in its admin (managed install)
    mock_shopify(shopify, settings)
    id_token = session_token(settings)

    # when the embedded document load arrives with its session token
    response = await client.get(path, params=embedded_query(settings, id_token))

    # then the admin page is served, framed only by the shop and Shopify's admin
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == CSP
    assert "<h1>Stamp on Some Shop</h1>" in response.text
    assert APP_BRIDGE in response.text
    # and the session token was exchanged for an expiring offline token
    assert json.loads(shopify.routes["token"].calls.last.request.content) == {
        "client_id": "test-api-key",
        "client_secret": settings.shopify_api_secret,
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": id_token,
        "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
        "requested_token_type": "urn:shopify:params:oauth:token-type:offline-access-token",
        "expiring": "1",
    }
    # and the shop is installed with encrypted tokens and its default program
    async with state.sessionmaker() as session:
        shop = (await session.execute(select(Shop))).scalar_one()
        programs = (await session.execute(select(ProgramVersion))).scalars().all()
    assert (shop.domain, shop.status, shop.currency) == (SHOP, ShopStatus.installed, "JPY")
    assert shop.access_token_enc is not None
    assert shop.refresh_token_enc is not None
    assert ACCESS_TOKEN.encode() not in shop.access_token_enc
    assert state.cipher.decrypt(shop.access_token_enc) == ACCESS_TOKEN
    assert state.cipher.decrypt(shop.refresh_token_enc) == REFRESH_TOKEN
    assert [(p.shop_id, p.config["currency"]) for p in programs] == [(shop.id, "JPY")]


async def test_embedded_load_of_an_installed_shop_does_not_call_shopify(
    client: httpx.AsyncClient, state: State, settings: Settings, shopify: respx.MockRouter
) -> None:
    mock_shopify(shopify, settings)
    await add_shop(state)
    before = await counts(state)

    response = await client.get("/admin", params=embedded_query(settings, session_token(settings)))

    assert response.status_code == 200
    assert "<h1>Stamp on Some Shop</h1>" in response.text
    assert shopify.routes["token"].call_count == 0
    assert shopify.routes["graphql"].call_count == 0
    assert await counts(state) == before


async def test_embedded_load_of_an_uninstalled_shop_reinstalls_it(
    client: httpx.AsyncClient, state: State, settings: Settings, shopify: respx.MockRouter
) -> None:
    mock_shopify(shopify, settings)
    shop_id = await add_shop(state, status=ShopStatus.uninstalled)

    response = await client.get("/admin", params=embedded_query(settings, session_token(settings)))

    assert response.status_code == 200
    assert shopify.routes["token"].call_count == 1
    async with state.sessionmaker() as session:
        shops = (await session.execute(select(Shop))).scalars().all()
    assert [(s.id, s.status, s.uninstalled_at) for s in shops] == [
        (shop_id, ShopStatus.installed, None)
    ]
    assert shops[0].access_token_enc is not None
    assert state.cipher.decrypt(shops[0].access_token_enc) == ACCESS_TOKEN


async def test_token_exchange_refused_by_shopify_shows_a_clear_error_and_writes_nothing(
    client: httpx.AsyncClient, state: State, settings: Settings, shopify: respx.MockRouter
) -> None:
    # given Shopify that refuses the session token
    mock_shopify(shopify, settings)
    shopify.routes["token"].mock(
        return_value=httpx.Response(
            400,
            json={"error": "invalid_subject_token", "error_description": "Invalid id token"},
        )
    )
    before = await counts(state)

    # when the embedded load arrives
    response = await client.get("/admin", params=embedded_query(settings, session_token(settings)))

    # then the merchant sees why, and nothing is written
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "token_exchange_failed",
        "message": "Shopify did not accept the session token for an access token: Shopify "
        f"refused the token request for {SHOP} with 400: Invalid id token. "
        "Reload Stamp from your Shopify admin.",
    }
    assert await counts(state) == before
    assert shopify.routes["graphql"].call_count == 0


async def test_embedded_load_with_a_bad_launch_hmac_is_refused(
    client: httpx.AsyncClient, state: State, settings: Settings, shopify: respx.MockRouter
) -> None:
    mock_shopify(shopify, settings)
    params = embedded_query(settings, session_token(settings))
    params = [(k, "0" * 64 if k == "hmac" else v) for k, v in params]
    before = await counts(state)

    response = await client.get("/admin", params=params)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_hmac"
    assert shopify.routes["token"].call_count == 0
    assert await counts(state) == before


async def test_session_token_signed_with_another_secret_is_refused(
    client: httpx.AsyncClient, state: State, settings: Settings, shopify: respx.MockRouter
) -> None:
    mock_shopify(shopify, settings)
    forged = session_token(settings, secret="someone-elses-secret-0123456789abcdef")
    before = await counts(state)

    response = await client.get("/admin", params=embedded_query(settings, forged))

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_session_token"
    assert shopify.routes["token"].call_count == 0
    assert await counts(state) == before


async def test_session_token_for_another_shop_is_refused(
    client: httpx.AsyncClient, state: State, settings: Settings, shopify: respx.MockRouter
) -> None:
    mock_shopify(shopify, settings)
    other = session_token(settings, "other-shop.myshopify.com")
    params = [(k, v) for k, v in embedded_query(settings, other) if k != "hmac"]
    params = [(k, SHOP if k == "shop" else v) for k, v in params]

    response = await client.get("/admin", params=signed(settings, params))

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_session_token"
    assert shopify.routes["token"].call_count == 0


async def test_expired_session_token_goes_through_the_bounce_page(
    client: httpx.AsyncClient, settings: Settings, shopify: respx.MockRouter
) -> None:
    # given a reload of the framed page, replaying a session token two minutes old
    mock_shopify(shopify, settings)
    stale = session_token(settings, issued_at=int(time.time()) - 120)

    response = await client.get("/admin", params=embedded_query(settings, stale))

    # then App Bridge is asked for a fresh token instead of showing an error
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith("/auth/session-token?")
    host = encode_host("admin.shopify.com/store/some-shop")
    assert query_of(location) == {
        "embedded": "1",
        "host": host,
        "locale": "en",
        "shop": SHOP,
        "shopify-reload": f"https://stamp.test/admin?embedded=1&host={host}&locale=en&shop={SHOP}",
    }
    assert shopify.routes["token"].call_count == 0


async def test_embedded_load_without_a_session_token_bounces_through_app_bridge(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    # given an embedded document load that carries no id_token
    params = {"shop": SHOP, "embedded": "1", "host": "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvc29tZS1zaG9w"}

    # when it arrives, it is sent to the bounce page with where to come back to
    response = await client.get("/admin", params=params)
    assert response.status_code == 302
    location = response.headers["location"]
    assert query_of(location)["shopify-reload"] == (
        "https://stamp.test/admin?shop=some-shop.myshopify.com&embedded=1"
        "&host=YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvc29tZS1zaG9w"
    )

    # and the bounce page only loads App Bridge, framed by the shop's admin
    bounce = await client.get(location)
    assert bounce.status_code == 200
    assert bounce.headers["content-security-policy"] == CSP
    assert APP_BRIDGE in bounce.text
    assert "<h1>" not in bounce.text


async def test_bounce_page_refuses_to_reload_outside_stamp(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/auth/session-token", params={"shop": SHOP, "shopify-reload": "https://evil.example/x"}
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_reload_url"


async def test_non_embedded_load_for_an_unknown_shop_starts_the_install(
    client: httpx.AsyncClient, state: State
) -> None:
    before = await counts(state)

    response = await client.get("/admin", params={"shop": SHOP})

    assert response.status_code == 302
    assert response.headers["location"] == "/auth/shopify?shop=some-shop.myshopify.com"
    assert await counts(state) == before


async def test_non_embedded_load_for_an_installed_shop_opens_it_inside_shopify(
    client: httpx.AsyncClient, state: State
) -> None:
    await add_shop(state)

    response = await client.get("/admin", params={"shop": SHOP})

    assert response.status_code == 302
    assert response.headers["location"] == (
        "https://admin.shopify.com/store/some-shop/apps/test-api-key"
    )


@pytest.mark.parametrize(
    ("params", "code"),
    [({}, "missing_shop"), ({"shop": "shop.myshopify.com.evil.com"}, "invalid_shop_domain")],
)
async def test_admin_without_a_valid_shop_is_refused(
    client: httpx.AsyncClient, params: dict[str, str], code: str
) -> None:
    response = await client.get("/admin", params=params)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


async def test_shop_name_is_html_escaped(
    client: httpx.AsyncClient, state: State, settings: Settings
) -> None:
    await add_shop(state, name='<script>alert("x")</script>')

    response = await client.get("/admin", params=embedded_query(settings, session_token(settings)))

    assert response.status_code == 200
    assert "<script>alert" not in response.text
    assert "<h1>Stamp on &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</h1>" in response.text


async def test_require_shop_accepts_a_valid_session_token(
    client: httpx.AsyncClient, state: State, settings: Settings
) -> None:
    await add_shop(state)

    response = await client.get(
        WHOAMI, headers={"Authorization": f"Bearer {session_token(settings)}"}
    )

    assert response.status_code == 200
    assert response.json() == {"shop": SHOP, "name": "Some Shop"}


def whoami_request(state: State, authorization: str | None) -> Request:
    headers = [(b"authorization", authorization.encode())] if authorization else []
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": WHOAMI,
            "query_string": b"",
            "headers": headers,
            "state": {"stamp": state},
        }
    )


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic dXNlcjpwYXNz", "Bearer not-a-jwt", "Bearer forged", "Bearer expired"],
)
async def test_require_shop_refuses_a_bad_token_and_asks_app_bridge_to_retry(
    client: httpx.AsyncClient, state: State, settings: Settings, authorization: str | None
) -> None:
    # given an installed shop and a request whose session token is missing, malformed,
    # signed with another secret, or expired
    await add_shop(state)
    if authorization == "Bearer forged":
        authorization = "Bearer " + session_token(
            settings, secret="someone-elses-secret-0123456789abcdef"
        )
    elif authorization == "Bearer expired":
        authorization = "Bearer " + session_token(settings, issued_at=int(time.time()) - 120)
    headers = {"Authorization": authorization} if authorization else {}

    # when an admin fetch carries it, it is refused with 401
    response = await client.get(WHOAMI, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_session_token"

    # and the error carries the header that makes App Bridge retry with a fresh token
    with pytest.raises(InvalidSessionToken) as raised:
        await require_shop(whoami_request(state, authorization))
    assert raised.value.headers == {RETRY_HEADER: "1"}


@pytest.mark.parametrize("status", [None, ShopStatus.uninstalled])
async def test_require_shop_refuses_a_shop_that_is_not_installed(
    client: httpx.AsyncClient, state: State, settings: Settings, status: str | None
) -> None:
    if status is not None:
        await add_shop(state, status=status)

    response = await client.get(
        WHOAMI, headers={"Authorization": f"Bearer {session_token(settings)}"}
    )

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "shop_not_installed"
    assert RETRY_HEADER not in response.headers
