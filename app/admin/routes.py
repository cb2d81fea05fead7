"""The embedded admin's document routes: `/` and `/admin` (the app home) and the bounce page.

An embedded load carries a session token as `id_token`; it is verified and, for a shop
Stamp cannot yet call (new, uninstalled, token dead), traded for an offline token. That
first embedded load is the whole install under Shopify-managed installation. A load
without a token goes through the bounce page, where App Bridge reloads it with one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import jinja2
import jwt
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from app.admin.auth import InvalidSessionToken
from app.db import unit_of_work
from app.errors import AppError
from app.integrations.shopify import signing
from app.models import Shop
from app.settings import Settings
from app.shops import service
from app.state import get_state

BOUNCE_PATH = "/auth/session-token"
RELOAD_PARAM = "shopify-reload"
# Launch parameters that must not survive a reload: App Bridge adds a fresh `id_token`,
# which would no longer match the old `hmac`; the session token authenticates instead.
_ONE_TIME_PARAMS = frozenset({"id_token", "hmac", "timestamp", "session", RELOAD_PARAM})

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


@dataclass(frozen=True, slots=True)
class Link:
    label: str
    href: str


UPCOMING = (
    Link("Program: earning rules, rewards and tiers", "/admin/program"),
    Link("Members and their points", "/admin/members"),
    Link("Referrals", "/admin/referrals"),
    Link("Win-back", "/admin/winback"),
    Link("Analytics", "/admin/analytics"),
    Link("Settings and integrations", "/admin/settings"),
)


def embedded_headers(shop: str) -> dict[str, str]:
    """Only this shop's admin and Shopify's may frame the page (clickjacking guard)."""
    return {"Content-Security-Policy": f"frame-ancestors https://{shop} https://admin.shopify.com;"}


def render(name: str, shop: str, **context: object) -> HTMLResponse:
    html = templates.get_template(name).render(**context)
    return HTMLResponse(html, headers=embedded_headers(shop))


async def admin_home(request: Request) -> Response:
    """The app home Shopify frames; outside the frame it sends the merchant where they belong."""
    state = get_state(request)
    params = request.query_params
    if "hmac" in params:
        service.verify_hmac(state.settings, params.multi_items())
    if "id_token" in params:
        return await _embedded_load(request)
    if "shop" not in params:
        raise AppError(
            "Open Stamp from your Shopify admin, or install it at "
            "/auth/shopify?shop=your-store.myshopify.com",
            code="missing_shop",
        )
    shop = service.shop_domain(params.get("shop"))
    if params.get("embedded") == "1":
        return RedirectResponse(_bounce_url(state.settings, request), status_code=302)
    async with unit_of_work(state.sessionmaker) as session:
        installed = await service.installed_shop(session, shop)
    if installed is None:
        return RedirectResponse(f"/auth/shopify?{urlencode({'shop': shop})}", status_code=302)
    return RedirectResponse(
        service.embedded_admin_url(state.settings, shop, params.get("host")), status_code=302
    )


async def _embedded_load(request: Request) -> Response:
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
            return RedirectResponse(_bounce_url(settings, request), status_code=302)
        raise InvalidSessionToken(f"The session token was refused: {exc}") from exc
    if "shop" in params and service.shop_domain(params.get("shop")) != token.shop:
        raise InvalidSessionToken("The session token belongs to another shop")
    async with unit_of_work(state.sessionmaker) as session:
        shop = await service.install_from_session_token(state, session, token, id_token)
    return _admin_page(settings, shop)


def _admin_page(settings: Settings, shop: Shop) -> HTMLResponse:
    return render(
        "admin.html",
        shop.domain,
        api_key=settings.shopify_api_key,
        demo=settings.DEMO_MODE,
        shop_name=shop.name or shop.domain,
        shop_domain=shop.domain,
        currency=shop.currency,
        links=UPCOMING,
    )


def _bounce_url(settings: Settings, request: Request) -> str:
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in _ONE_TIME_PARAMS]
    reload_url = settings.external_url(request.url.path)
    if kept:
        reload_url += "?" + urlencode(kept)
    return f"{BOUNCE_PATH}?{urlencode([*kept, (RELOAD_PARAM, reload_url)])}"


async def session_token_bounce(request: Request) -> Response:
    """A page that only loads App Bridge, which reloads `shopify-reload` with a fresh token."""
    settings = get_state(request).settings
    shop = service.shop_domain(request.query_params.get("shop"))
    reload_url = request.query_params.get(RELOAD_PARAM, "")
    if not reload_url.startswith(settings.APP_URL + "/"):
        raise AppError(
            f"The {RELOAD_PARAM} address must be a Stamp page", code="invalid_reload_url"
        )
    return render("bounce.html", shop, api_key=settings.shopify_api_key)


routes: list[BaseRoute] = [
    Route("/", admin_home, methods=["GET"]),
    Route("/admin", admin_home, methods=["GET"]),
    Route(BOUNCE_PATH, session_token_bounce, methods=["GET"]),
]
