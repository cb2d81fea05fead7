"""The admin's edge: authenticate, open the unit of work, render pages with the shop's CSP.

Every admin page is `async def handler(ctx: AdminContext) -> Response` wrapped by `page`,
so a page never forgets the session check, the tenancy scope (the shop comes only from
the session token or the login cookie), the CSRF check on writes, or the frame-ancestors
header, and the transaction is committed in one place, before the response is sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from app.admin import auth
from app.api.edge import NUL_MESSAGE, has_nul
from app.db import unit_of_work
from app.errors import AppError
from app.models import Shop
from app.state import State, get_state

BOUNCE_PATH = "/auth/session-token"
RELOAD_PARAM = "shopify-reload"
# Launch parameters that must not survive a reload: App Bridge adds a fresh `id_token`,
# which would no longer match the old `hmac`; the session token authenticates instead.
ONE_TIME_PARAMS = frozenset({"id_token", "hmac", "timestamp", "session", RELOAD_PARAM})
# What an embedded link carries so the next document load can get a fresh session token.
EMBEDDED_PARAMS = ("shop", "host", "embedded")

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


@dataclass(frozen=True, slots=True)
class NavLink:
    label: str
    path: str


NAV = (
    NavLink("Home", "/admin"),
    NavLink("Program", "/admin/program"),
    NavLink("Members", "/admin/members"),
    NavLink("Referrals", "/admin/referrals"),
    NavLink("Import", "/admin/import"),
    NavLink("Dead letters", "/admin/dead-letters"),
    NavLink("Integrations", "/admin/integrations"),
)


def embedded_headers(shop: str) -> dict[str, str]:
    """Only this shop's admin and Shopify's may frame the page (clickjacking guard)."""
    return {
        "Content-Security-Policy": f"frame-ancestors https://{shop} https://admin.shopify.com;",
        "Cache-Control": "private, no-store",
    }


def render_html(
    template: str, shop_domain: str, status_code: int = 200, **context: object
) -> HTMLResponse:
    html = templates.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=embedded_headers(shop_domain))


@dataclass(slots=True)
class AdminContext:
    request: Request
    state: State
    session: AsyncSession
    shop: Shop
    auth: auth.AdminAuth
    form: FormData | None = None
    notices: list[str] = field(default_factory=list)

    @property
    def actor(self) -> str:
        """Who did it, as recorded on versions, entries and decisions."""
        return f"admin:{self.auth.actor}"

    def url(self, path: str, **params: object) -> str:
        """A link to another admin page; embedded links keep what the bounce page needs."""
        query: list[tuple[str, str]] = []
        if self.auth.embedded:
            query.extend(
                (name, self.request.query_params[name])
                for name in EMBEDDED_PARAMS
                if name in self.request.query_params
            )
        query.extend((key, str(value)) for key, value in params.items() if value is not None)
        return path + ("?" + urlencode(query) if query else "")

    def kept_params(self) -> list[tuple[str, str]]:
        """Hidden inputs a GET form needs to stay inside Shopify's frame."""
        if not self.auth.embedded:
            return []
        params = self.request.query_params
        return [(name, params[name]) for name in EMBEDDED_PARAMS if name in params]

    def field(self, name: str, default: str = "") -> str:
        if self.form is None:
            return default
        value = self.form.get(name)
        return value if isinstance(value, str) else default

    def render(self, name: str, status_code: int = 200, **context: object) -> HTMLResponse:
        base = self.base_context()
        base.update(context)
        return render_html(name, self.shop.domain, status_code, **base)

    def base_context(self) -> dict[str, Any]:
        """What every admin template gets: the shop, the navigation, the CSRF token."""
        settings = self.state.settings
        return {
            "shop": self.shop,
            "shop_name": self.shop.name or self.shop.domain,
            "embedded": self.auth.embedded,
            "api_key": settings.shopify_api_key,
            "csrf_field": auth.CSRF_FIELD,
            "csrf": self.auth.csrf or "",
            "nav": [(link, self.url(link.path)) for link in NAV],
            "here": self.request.url.path,
            "url": self.url,
            "notices": self.notices,
            "keep": self.kept_params(),
        }


Handler = Callable[[AdminContext], Awaitable[Response]]


class Refused(Exception):
    """A form refused: its page (rendered while the session was open) goes out and the
    unit of work rolls back, so a refusal never leaves a half-written change behind."""

    def __init__(self, response: Response) -> None:
        super().__init__("refused")
        self.response = response


def bounce_url(request: Request) -> str:
    """Where an embedded document load without a token goes to get one from App Bridge."""
    settings = get_state(request).settings
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ONE_TIME_PARAMS]
    reload_url = settings.external_url(request.url.path)
    if kept:
        reload_url += "?" + urlencode(kept)
    return f"{BOUNCE_PATH}?{urlencode([*kept, (RELOAD_PARAM, reload_url)])}"


def error_page(request: Request, exc: AppError) -> Response:
    headers = {"Cache-Control": "private, no-store", **getattr(exc, "headers", {})}
    html = templates.get_template("error.html").render(message=exc.message, code=exc.code)
    return HTMLResponse(html, status_code=exc.status_code, headers=headers)


def page(handler: Handler, *, json: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """Wrap an admin handler: auth, shop, CSRF on writes, one unit of work, HTML errors."""

    async def run(request: Request) -> Response:
        state = get_state(request)
        try:
            try:
                who = auth.authenticate(request)
            except auth.NotSignedIn:
                if request.method == "GET" and "shop" in request.query_params:
                    return RedirectResponse(bounce_url(request), status_code=302)
                raise
            form = None
            if has_nul(dict(request.query_params)) or has_nul(dict(request.path_params)):
                raise AppError(NUL_MESSAGE, code="invalid_request")
            if request.method not in auth.SAFE_METHODS:
                form = await request.form(max_part_size=8 * 1024 * 1024)
                submitted = form.get(auth.CSRF_FIELD)
                auth.check_csrf(request, who, submitted if isinstance(submitted, str) else None)
                fields = [item for pair in form.multi_items() for item in pair]
                if has_nul([item for item in fields if isinstance(item, str)]):
                    raise AppError(NUL_MESSAGE, code="invalid_request")
            async with unit_of_work(state.sessionmaker) as session:
                shop = await auth.admin_shop(session, who)
                domain = shop.domain
                response = await handler(AdminContext(request, state, session, shop, who, form))
            for name, value in embedded_headers(domain).items():
                response.headers.setdefault(name, value)
            return response
        except Refused as refused:
            return refused.response
        except AppError as exc:
            if json:
                return JSONResponse(
                    {"error": {"code": exc.code, "message": exc.message}},
                    status_code=exc.status_code,
                    headers=getattr(exc, "headers", None),
                )
            return error_page(request, exc)

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


def back_to(ctx: AdminContext, path: str, **params: object) -> Response:
    """After a successful write: show the page again (303 so a reload does not re-post)."""
    return RedirectResponse(ctx.url(path, **params), status_code=303)
