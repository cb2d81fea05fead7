"""Admin auth: App Bridge session tokens, the login link and its cookie, CSRF on writes."""

from __future__ import annotations

import time

import httpx
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin import auth
from app.models import ShopStatus
from app.program.service import ensure_default_program
from app.settings import Settings
from tests.admin.support import OTHER, bearer, sign_in
from tests.builders import create_shop, row_counts

CSP_A = "frame-ancestors https://some-shop.myshopify.com https://admin.shopify.com;"


async def test_a_login_link_sets_a_signed_httponly_cookie_for_that_shop(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given an installed shop and a login link printed for it
    shop = await create_shop(session, settings)
    link = auth.login_link(settings, shop)
    assert link.startswith("https://stamp.test/admin/login?token=")

    # when the merchant opens it
    response = await client.get(link)

    # then a signed HttpOnly, SameSite cookie scoped to /admin is set and the admin opens
    assert response.status_code == 303
    assert response.headers["location"] == "/admin"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("stamp_admin=")
    for part in ("HttpOnly", "Path=/admin", "SameSite=lax", "Secure", "Max-Age=43200"):
        assert part in cookie
    home = await client.get("/admin")
    assert home.status_code == 200
    assert "<h1>Stamp on Some Shop</h1>" in home.text
    assert home.headers["content-security-policy"] == CSP_A
    # standalone pages do not load Shopify's CDN scripts
    assert "cdn.shopify.com" not in home.text


async def test_a_forged_or_expired_login_link_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    forged = URLSafeTimedSerializer("not-our-secret", salt=auth.LOGIN_SALT).dumps(
        {"shop_id": shop.id}
    )
    old = URLSafeTimedSerializer(settings.secret_key, salt=auth.LOGIN_SALT)
    expired = old.dumps({"shop_id": shop.id})
    real_time = time.time
    try:
        time.time = lambda: real_time() + auth.LOGIN_LINK_SECONDS + 5  # type: ignore[assignment]
        late = await client.get("/admin/login", params={"token": expired})
    finally:
        time.time = real_time  # type: ignore[assignment]

    bad = await client.get("/admin/login", params={"token": forged})

    assert bad.status_code == 401
    assert "This login link is not valid" in bad.text
    assert "set-cookie" not in bad.headers
    assert late.status_code == 401
    assert "This login link has expired" in late.text
    assert (await client.get("/admin/members")).status_code == 401


async def test_a_login_link_for_an_uninstalled_shop_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings, status=ShopStatus.uninstalled)
    response = await client.get(auth.login_link(settings, shop))
    assert response.status_code == 401
    assert "set-cookie" not in response.headers


async def test_pages_without_a_session_say_how_to_open_stamp(client: httpx.AsyncClient) -> None:
    response = await client.get("/admin/program")
    assert response.status_code == 401
    assert "stamp admin login-link" in response.text


async def test_an_embedded_navigation_without_a_token_goes_through_the_bounce_page(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await create_shop(session, settings)
    response = await client.get(
        "/admin/members", params={"shop": "some-shop.myshopify.com", "host": "aG9zdA"}
    )
    assert response.status_code == 302
    assert response.headers["location"].startswith("/auth/session-token?shop=some-shop")
    assert (
        "shopify-reload=https%3A%2F%2Fstamp.test%2Fadmin%2Fmembers" in response.headers["location"]
    )


async def test_a_bearer_session_token_opens_any_page_with_the_shops_csp(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    for path in (
        "/admin/program",
        "/admin/members",
        "/admin/referrals",
        "/admin/dead-letters",
        "/admin/import",
        "/admin/integrations",
        "/admin/export/summary.csv",
    ):
        response = await client.get(path, headers=bearer(settings, shop))
        assert response.status_code == 200, path
        assert response.headers["content-security-policy"] == CSP_A, path
        assert response.headers["cache-control"] == "private, no-store", path


async def test_a_bad_session_token_asks_app_bridge_to_retry(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await create_shop(session, settings)
    response = await client.get("/admin/program", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.headers[auth.RETRY_HEADER] == "1"


async def test_cookie_writes_need_the_csrf_token_and_our_origin(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given a merchant signed in with the cookie
    shop = await create_shop(session, settings)
    await ensure_default_program(session, shop)
    await session.commit()
    csrf = await sign_in(client, settings, shop)
    before = await row_counts(session)
    form = {"earning.rate": "2", "earning.basis": "merchandise"}

    # when a form arrives without the token, with a wrong one, or from another site
    missing = await client.post("/admin/program", data=form)
    wrong = await client.post("/admin/program", data={**form, "csrf_token": "x" + csrf})
    foreign = await client.post(
        "/admin/program",
        data={**form, "csrf_token": csrf},
        headers={"Origin": "https://evil.example"},
    )

    # then each is refused and nothing changed
    assert missing.status_code == 403
    assert "The form expired" in missing.text
    assert wrong.status_code == 403
    assert foreign.status_code == 403
    assert "another site" in foreign.text
    assert await row_counts(session) == before


async def test_a_session_token_for_an_unknown_shop_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings, domain=OTHER)
    await session.delete(shop)
    await session.commit()
    response = await client.get("/admin/members", headers=bearer(settings, shop))
    assert response.status_code == 401
    assert "not installed" in response.text
