"""App-proxy routes: https://{shop}/apps/stamp/... arrives here as /proxy/....

Every request carries Shopify's `signature` over its query; it is checked (and its
timestamp) before anything else. Identity comes only from `logged_in_customer_id`,
which Shopify sets: a shopper cannot claim to be someone else.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from app.api.edge import body_sha256, parse_body
from app.api.pagination import decode_cursor, encode_cursor
from app.db import unit_of_work
from app.errors import AppError, Unauthorized
from app.integrations.shopify.signing import (
    APP_PROXY_VERIFIED_QUERY,
    is_valid_shop_domain,
    verify_app_proxy,
)
from app.ledger.repository import ActivityRepository
from app.models import Member, Platform, Redemption, ShopStatus
from app.privacy import service as privacy
from app.program.service import config_for_version
from app.rewards import service as rewards
from app.shops.repository import ShopRepository
from app.state import State, get_state
from widgets.liquid import liquid_environment
from widgets.service import Visitor, known_member, visitor_member, widget_state

PROXY_MAX_AGE_SECONDS = 600
STATIC_DIR = Path(__file__).resolve().parent / "static"
templates = liquid_environment(Path(__file__).resolve().parent / "templates")


class RedeemIn(BaseModel):
    reward_id: str = Field(min_length=1, max_length=64)
    request_id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    points: int | None = Field(default=None, ge=1, le=10_000_000)


class LeaveIn(BaseModel):
    confirm: bool


def check_signature(request: Request, state: State, now: float | None = None) -> tuple[str, str]:
    """The shop and path prefix of a genuine, fresh app-proxy request; 401 otherwise."""
    # The rate limiter in front verified this exact query already (same bytes, parsed the
    # same way); otherwise (rate limits off, tests without the middleware) check it here.
    verified = request.scope.get(APP_PROXY_VERIFIED_QUERY) == request.scope.get("query_string")
    params = list(request.query_params.multi_items())
    if not verified and not verify_app_proxy(state.settings.shopify_api_secret, params):
        raise Unauthorized("The app proxy signature does not match", code="invalid_signature")
    query = request.query_params
    timestamp = query.get("timestamp", "")
    current = time.time() if now is None else now
    if not timestamp.isdigit() or abs(current - int(timestamp)) > PROXY_MAX_AGE_SECONDS:
        raise Unauthorized("The app proxy request is too old", code="stale_request")
    shop = (query.get("shop") or "").lower()
    if not is_valid_shop_domain(shop):
        raise Unauthorized("The app proxy request names no shop", code="invalid_signature")
    return shop, query.get("path_prefix") or "/apps/stamp"


async def _visitor(request: Request, session: AsyncSession) -> Visitor:
    state = get_state(request)
    domain, path_prefix = check_signature(request, state)
    found = await ShopRepository(session).get_with_program(domain, Platform.shopify)
    if found is None or found[0].status != ShopStatus.installed:
        raise Unauthorized("Stamp is not installed on this shop", code="shop_not_installed")
    shop, version_id = found
    customer_id = request.query_params.get("logged_in_customer_id") or None
    config = await config_for_version(session, shop, version_id)
    return Visitor(shop=shop, customer_id=customer_id, path_prefix=path_prefix, config=config)


def _json(body: Any, status_code: int = 200) -> Response:
    # Personal data: never cached by the shop's CDN or the browser.
    return Response(
        orjson.dumps(body),
        status_code=status_code,
        media_type="application/json",
        headers={"Cache-Control": "private, no-store"},
    )


def _signed_in(visitor: Visitor) -> str:
    if not visitor.customer_id:
        raise Unauthorized("Sign in to use your points", code="not_signed_in")
    return visitor.customer_id


async def state_endpoint(request: Request) -> Response:
    """Guests and known members are served by a read; only a first sight writes."""
    state = get_state(request)
    async with state.reader() as session:
        visitor = await _visitor(request, session)
        known = await known_member(session, visitor)
        body = (
            await widget_state(session, visitor, known)
            if known is not None or not visitor.customer_id
            else None
        )
    if body is None:
        async with unit_of_work(state.sessionmaker) as session:
            visitor = await _visitor(request, session)
            body = await widget_state(session, visitor)
    locale = (request.query_params.get("locale") or "en")[:8]
    body["shop"]["locale"] = locale
    return _json(body)


async def redeem_endpoint(request: Request) -> Response:
    state = get_state(request)
    raw = await request.body()
    async with unit_of_work(state.sessionmaker) as session:
        visitor = await _visitor(request, session)
        customer_id = _signed_in(visitor)
        body = parse_body(raw, RedeemIn)
        member = await visitor_member(session, visitor)
        assert member is not None
        redemption = await rewards.start(
            session,
            visitor.shop,
            member,
            body.reward_id,
            request_key=f"widget:{customer_id}:{body.request_id}",
            request_sha256=body_sha256(raw),
            points=body.points,
        )
        redemption_id, member_id = redemption.id, member.id
    issued = await rewards.issue(state, redemption_id)
    async with state.sessionmaker() as session:
        balance = await _balance(session, member_id)
    return _json(
        {
            "code": issued.code,
            "points_spent": issued.points_spent,
            "expires_at": issued.expires_at.isoformat() if issued.expires_at else None,
            "points_balance": balance,
        }
    )


async def _balance(session: AsyncSession, member_id: int) -> int:
    member = await session.get(Member, member_id)
    return member.points_balance if member else 0


async def history_endpoint(request: Request) -> Response:
    state = get_state(request)
    async with state.sessionmaker() as session:
        visitor = await _visitor(request, session)
        _signed_in(visitor)
        member = await visitor_member(session, visitor)
        assert member is not None
        rows = await ActivityRepository(session).page(
            member.id, 21, decode_cursor("h", request.query_params.get("cursor"))
        )
        codes = await _codes(session, [r.source_id for r in rows if r.source_type == "redemption"])
        page = rows[:20]
        data = [
            {
                "points": entry.points,
                "kind": entry.kind,
                "reason": entry.reason,
                "created_at": entry.created_at.isoformat(),
                "code": codes.get(entry.source_id or "")
                if entry.source_type == "redemption" and entry.points < 0
                else None,
            }
            for entry in page
        ]
        next_cursor = encode_cursor("h", page[-1].id) if len(rows) > 20 else None
        await session.rollback()  # a first sight creates nothing on a read
    return _json({"data": data, "next_cursor": next_cursor})


async def _codes(session: AsyncSession, ids: list[str | None]) -> dict[str, str]:
    wanted = [int(i) for i in ids if i and i.isdigit()]
    if not wanted:
        return {}
    result = await session.execute(
        select(Redemption.id, Redemption.code).where(
            Redemption.id.in_(wanted), Redemption.status.in_(("issued", "used"))
        )
    )
    return {str(row.id): row.code for row in result}


async def export_endpoint(request: Request) -> Response:
    """The shopper's own copy of what Stamp holds on them."""
    state = get_state(request)
    async with state.sessionmaker() as session:
        visitor = await _visitor(request, session)
        _signed_in(visitor)
        member = await visitor_member(session, visitor)
        assert member is not None
        document = await privacy.member_export(session, visitor.shop, [member])
        await session.rollback()
    return Response(
        orjson.dumps(document, option=orjson.OPT_INDENT_2),
        media_type="application/json",
        headers={
            "Content-Disposition": 'attachment; filename="my-rewards-data.json"',
            "Cache-Control": "private, no-store",
        },
    )


async def leave_endpoint(request: Request) -> Response:
    """Leave the program: erased exactly as a `customers/redact` would erase it."""
    state = get_state(request)
    raw = await request.body()
    async with unit_of_work(state.sessionmaker) as session:
        visitor = await _visitor(request, session)
        customer_id = _signed_in(visitor)
        if not parse_body(raw, LeaveIn).confirm:
            raise AppError("Confirm to leave the program", code="confirmation_required")
        member = await visitor_member(session, visitor)
        assert member is not None
        request_body = orjson.dumps(
            {
                "customer": {"id": customer_id, "email": member.email, "phone": member.phone},
                "source": "widget",
            }
        )
        await privacy.redact_customer(
            session, visitor.shop, orjson.loads(request_body), request_body
        )
    return _json({"left": True})


async def rewards_page(request: Request) -> Response:
    """A full rewards page that Shopify renders inside the merchant's theme."""
    state = get_state(request)
    async with unit_of_work(state.sessionmaker) as session:
        visitor = await _visitor(request, session)
        body = await widget_state(session, visitor)
    html = templates.get_template("rewards.liquid.html").render(
        state=body,
        api_base=visitor.path_prefix,
        loader_url=f"{state.settings.APP_URL}/widgets/static/stamp-loader.js",
        shop_domain=visitor.shop.domain,
    )
    return Response(
        html, media_type="application/liquid", headers={"Cache-Control": "private, no-store"}
    )


class CachedStatic(StaticFiles):
    """Widget assets: long-lived and public (they carry no personal data)."""

    async def get_response(self, path: str, scope: Any) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = "public, max-age=3600"
            response.headers["Access-Control-Allow-Origin"] = "*"
        return response


def build_routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = [
        Route("/proxy/api/state", state_endpoint, methods=["GET"]),
        Route("/proxy/api/redeem", redeem_endpoint, methods=["POST"]),
        Route("/proxy/api/history", history_endpoint, methods=["GET"]),
        Route("/proxy/api/export", export_endpoint, methods=["GET"]),
        Route("/proxy/api/leave", leave_endpoint, methods=["POST"]),
        Route("/proxy/rewards", rewards_page, methods=["GET"]),
    ]
    if STATIC_DIR.is_dir():
        # Compressed on the wire: the loader is ~13 KB raw and ~5 KB gzipped.
        static = GZipMiddleware(CachedStatic(directory=STATIC_DIR), minimum_size=512)
        routes.append(Mount("/widgets/static", app=static, name="static"))
    return routes


routes = build_routes()
