"""The admin's routes: the app home (`/`, `/admin`), the bounce page, the login link, the
pages and their static assets.

An embedded load carries a session token as `id_token`; it is verified and, for a shop
Stamp cannot yet call (new, uninstalled, token dead), traded for an offline token. That
first embedded load is the whole install under Shopify-managed installation. A load
without a token goes through the bounce page, where App Bridge reloads it with one.
Outside Shopify (the demo, WooCommerce stores) `stamp admin login-link` signs a merchant
in with a cookie instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from app.admin import auth
from app.admin.auth import InvalidSessionToken
from app.admin.edge import (
    BOUNCE_PATH,
    RELOAD_PARAM,
    bounce_url,
    embedded_headers,
    error_page,
    render_html,
)
from app.admin.pages import (
    dead_letters,
    home,
    imports,
    integrations,
    members,
    program,
    referrals,
    webhooks,
)
from app.db import unit_of_work
from app.errors import AppError
from app.integrations.shopify import signing
from app.shops import service
from app.state import get_state

STATIC_DIR = Path(__file__).parent / "static"

__all__ = ["embedded_headers", "routes"]


async def admin_home(request: Request) -> Response:
    """The app home Shopify frames; outside the frame it sends the merchant where they belong."""
    state = get_state(request)
    params = request.query_params
    if "hmac" in params:
        service.verify_hmac(state.settings, params.multi_items())
    if "id_token" in params:
        bounced = await _embedded_install(request)
        return bounced or await home.home_page(request)
    if request.headers.get("authorization") or (
        "shop" not in params and request.cookies.get(auth.COOKIE_NAME)
    ):
        return await home.home_page(request)
    if "shop" not in params:
        raise AppError(
            "Open Stamp from your Shopify admin, or install it at "
            "/auth/shopify?shop=your-store.myshopify.com",
            code="missing_shop",
        )
    shop = service.shop_domain(params.get("shop"))
    if params.get("embedded") == "1":
        return RedirectResponse(bounce_url(request), status_code=302)
    async with unit_of_work(state.sessionmaker) as session:
        installed = await service.installed_shop(session, shop)
    if installed is None:
        return RedirectResponse(f"/auth/shopify?{urlencode({'shop': shop})}", status_code=302)
    return RedirectResponse(
        service.embedded_admin_url(state.settings, shop, params.get("host")), status_code=302
    )


async def _embedded_install(request: Request) -> Response | None:
    """Verify the launch's session token and install (token exchange) when needed; a
    replayed, expired token is sent to the bounce page for a fresh one."""
    state = get_state(request)
    settings = state.settings
    params = request.query_params
    id_token = params["id_token"]
    try:
        token = signing.decode_session_token(
            id_token, settings.shopify_api_key, settings.shopify_api_secret, leeway=10
        )
    except signing.SessionTokenError as exc:
        if isinstance(exc.__cause__, jwt.ExpiredSignatureError) and "shop" in params:
            # A reload of the framed page replays the old token: fetch a fresh one.
            service.shop_domain(params.get("shop"))
            return RedirectResponse(bounce_url(request), status_code=302)
        raise InvalidSessionToken(f"The session token was refused: {exc}") from exc
    if "shop" in params and service.shop_domain(params.get("shop")) != token.shop:
        raise InvalidSessionToken("The session token belongs to another shop")
    async with unit_of_work(state.sessionmaker) as session:
        await service.install_from_session_token(state, session, token, id_token)
    return None


async def session_token_bounce(request: Request) -> Response:
    """A page that only loads App Bridge, which reloads `shopify-reload` with a fresh token."""
    settings = get_state(request).settings
    shop = service.shop_domain(request.query_params.get("shop"))
    reload_url = request.query_params.get(RELOAD_PARAM, "")
    if not reload_url.startswith(settings.APP_URL + "/"):
        raise AppError(
            f"The {RELOAD_PARAM} address must be a Stamp page", code="invalid_reload_url"
        )
    return render_html("bounce.html", shop, api_key=settings.shopify_api_key, embedded=True)


async def login(request: Request) -> Response:
    """Open a login link: set the shop's signed session cookie and go to the admin home."""
    state = get_state(request)
    settings = state.settings
    try:
        shop_id = auth.read_login_token(settings, request.query_params.get("token", ""))
        async with unit_of_work(state.sessionmaker) as session:
            who = auth.AdminAuth(embedded=False, shop_domain=None, shop_id=shop_id, actor="login")
            shop = await auth.admin_shop(session, who)
            domain = shop.domain
    except AppError as exc:
        return error_page(request, exc)
    value, _ = auth.session_cookie(settings, shop_id)
    response = RedirectResponse("/admin", status_code=303)
    response.headers.update(embedded_headers(domain))
    response.set_cookie(
        auth.COOKIE_NAME,
        value,
        max_age=auth.COOKIE_SECONDS,
        path=auth.COOKIE_PATH,
        secure=settings.APP_URL.startswith("https://"),
        httponly=True,
        samesite="lax",
    )
    return response


class AdminStatic(StaticFiles):
    """The admin's CSS and JS: public, cached for an hour."""

    async def get_response(self, path: str, scope: Any) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = "public, max-age=3600"
        return response


routes: list[BaseRoute] = [
    Route("/", admin_home, methods=["GET"]),
    Route("/admin", admin_home, methods=["GET"]),
    Route(BOUNCE_PATH, session_token_bounce, methods=["GET"]),
    Route(auth.LOGIN_PATH, login, methods=["GET"]),
    Mount("/admin/static", app=AdminStatic(directory=STATIC_DIR), name="admin-static"),
    *home.routes,
    *program.routes,
    *members.routes,
    *referrals.routes,
    *dead_letters.routes,
    *imports.routes,
    *integrations.routes,
    *webhooks.routes,
]
