"""WooCommerce HTTP edge: connect a store, and the storefront widget API.

Routes stay thin: they parse, open the unit of work and render; the rules live in
`connect`, `widget` and the shared rewards and widget services.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from app.api.edge import body_sha256, parse_body
from app.api.pagination import decode_cursor, encode_cursor
from app.db import unit_of_work
from app.errors import AppError
from app.integrations.woocommerce import connect, widget
from app.ledger.repository import ActivityRepository
from app.models import Member
from app.rewards import service as rewards
from app.state import get_state
from widgets.routes import RedeemIn, _codes
from widgets.service import widget_state

# --- connect ------------------------------------------------------------------------------


async def connect_start(request: Request) -> Response:
    """`GET /woocommerce/connect?store_url=https://...` → the store's authorize screen."""
    state = get_state(request)
    async with unit_of_work(state.sessionmaker) as session:
        url = await connect.begin_connect(
            state.settings, session, request.query_params.get("store_url")
        )
    return RedirectResponse(url, status_code=302)


async def connect_callback(request: Request) -> Response:
    """WooCommerce posts the keys here; anything but exactly 200 makes it delete them."""
    state = get_state(request)
    callback = parse_body(await request.body(), connect.CallbackIn)
    async with unit_of_work(state.sessionmaker) as session:
        await connect.complete_connect(state, session, callback)
    return JSONResponse({"result": "connected"}, status_code=200)


async def connect_return(request: Request) -> Response:
    """Where WooCommerce sends the merchant's browser: back to the plugin's settings page."""
    state = get_state(request)
    try:
        _nonce, store_url = connect.read_state(
            state.settings, request.query_params.get("user_id"), max_age=3600
        )
    except AppError:
        return PlainTextResponse("This connect link is not valid; start again.", status_code=400)
    success = request.query_params.get("success") == "1"
    target = f"{store_url}/wp-admin/admin.php?page=stamp&connected={'1' if success else '0'}"
    return RedirectResponse(target, status_code=302)


# --- storefront widget API -----------------------------------------------------------------

Endpoint = Callable[[Request], Awaitable[Response]]


def _cors_origin(request: Request) -> str | None:
    origin = request.headers.get("origin")
    return origin if origin and urlsplit(origin).scheme == "https" else None


def _json(request: Request, body: Any, status_code: int = 200) -> Response:
    headers = {"Cache-Control": "private, no-store", "Vary": "Origin"}
    origin = _cors_origin(request)
    if origin:
        # The bearer token, not a cookie, authenticates: no credentials mode is needed.
        headers["Access-Control-Allow-Origin"] = origin
    return Response(
        orjson.dumps(body), status_code=status_code, media_type="application/json", headers=headers
    )


def storefront(endpoint: Endpoint) -> Endpoint:
    """Errors become JSON the widget can read across origins."""

    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except AppError as exc:
            return _json(
                request, {"error": {"code": exc.code, "message": exc.message}}, exc.status_code
            )

    return wrapped


async def preflight(request: Request) -> Response:
    headers = {
        "Access-Control-Allow-Methods": "GET, POST",
        "Access-Control-Allow-Headers": "Authorization, Content-Type",
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }
    origin = _cors_origin(request)
    if origin:
        headers["Access-Control-Allow-Origin"] = origin
    return Response(status_code=204, headers=headers)


@storefront
async def state_endpoint(request: Request) -> Response:
    state = get_state(request)
    token = widget.bearer(request.headers.get("authorization"))
    async with unit_of_work(state.sessionmaker) as session:
        shopper = await widget.shopper(state, session, token)
        body = await widget_state(session, shopper.visitor)
    body["shop"]["locale"] = (request.query_params.get("locale") or "en")[:8]
    return _json(request, body)


@storefront
async def redeem_endpoint(request: Request) -> Response:
    state = get_state(request)
    token = widget.bearer(request.headers.get("authorization"))
    raw = await request.body()
    async with unit_of_work(state.sessionmaker) as session:
        shopper = await widget.shopper(state, session, token)
        body = parse_body(raw, RedeemIn)
        redemption = await rewards.start(
            session,
            shopper.shop,
            shopper.member,
            body.reward_id,
            request_key=f"woo-widget:{shopper.customer_id}:{body.request_id}",
            request_sha256=body_sha256(raw),
            points=body.points,
        )
        redemption_id, member_id = redemption.id, shopper.member.id
    issued = await rewards.issue(state, redemption_id)
    async with state.sessionmaker() as session:
        member = await session.get(Member, member_id)
        balance = member.points_balance if member else 0
    return _json(
        request,
        {
            "code": issued.code,
            "points_spent": issued.points_spent,
            "expires_at": issued.expires_at.isoformat() if issued.expires_at else None,
            "points_balance": balance,
        },
    )


@storefront
async def history_endpoint(request: Request) -> Response:
    state = get_state(request)
    token = widget.bearer(request.headers.get("authorization"))
    async with unit_of_work(state.sessionmaker) as session:
        shopper = await widget.shopper(state, session, token)
        rows = await ActivityRepository(session).page(
            shopper.member.id, 21, decode_cursor("h", request.query_params.get("cursor"))
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
    return _json(request, {"data": data, "next_cursor": next_cursor})


routes: list[BaseRoute] = [
    Route("/woocommerce/connect", connect_start, methods=["GET"]),
    Route(connect.CALLBACK_PATH, connect_callback, methods=["POST"]),
    Route(connect.RETURN_PATH, connect_return, methods=["GET"]),
    Route("/woo/api/state", state_endpoint, methods=["GET"]),
    Route("/woo/api/redeem", redeem_endpoint, methods=["POST"]),
    Route("/woo/api/history", history_endpoint, methods=["GET"]),
    Route("/woo/api/{path:path}", preflight, methods=["OPTIONS"]),
]
