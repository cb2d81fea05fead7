"""The demo storefront (`/demo`) and its helpers, mounted only in DEMO_MODE.

The page shows a shopper what the widget will: balance, pending points, tier and progress,
referral link (the member JSON every surface shares) and recent ledger activity. "Place a
demo order" builds a real-shaped `orders/paid` payload, signs it with the app secret and
POSTs it to this very app's `/webhooks/shopify` over HTTP (an in-process ASGI transport),
so the points come from the same receiver, pipeline and engine as a Shopify delivery.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import jinja2
import jwt
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from app.demo import DEMO_HEADER, DEMO_HEADER_VALUE, DEMO_SHOP
from app.demo import seed as demo_seed
from app.demo.shopify_admin import routes as shopify_admin_routes
from app.integrations.shopify.signing import app_proxy_signature
from app.members.schemas import MemberOut
from app.members.service import member_out
from app.models import LedgerEntry, Member, Order, Shop
from app.models.base import utcnow
from app.program.config import ProgramConfig
from app.program.service import current_config
from app.settings import Settings
from app.shops.repository import ShopRepository
from app.state import get_state

MAX_AMOUNT = Decimal("100000")
ACTIVITY_LIMIT = 10
DEMO_ORDER_ID_BASE = 6_000_000_000_000
SESSION_TOKEN_SECONDS = 60
ERRORS = {
    "amount": "Enter an amount between 0.01 and 100000 with at most two decimals.",
    "customer": "Choose a shopper from the list.",
    "delivery": "The webhook was not processed; see the server log and the admin's dead letters.",
}
KIND_LABELS = {
    "earn": "Order",
    "reverse": "Reversal",
    "signup": "Signup bonus",
    "redeem": "Reward",
    "expire": "Expired",
    "adjust": "Adjustment",
}

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def _page(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = templates.get_template(name).render(**context)
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={
            DEMO_HEADER: DEMO_HEADER_VALUE,
            "Content-Security-Policy": (
                "default-src 'self'; style-src 'self' 'unsafe-inline'; form-action 'self'; "
                "frame-ancestors 'none'"
            ),
            "Cache-Control": "no-store",
        },
    )


@dataclass(frozen=True, slots=True)
class Shopper:
    member_id: int
    label: str


@dataclass(frozen=True, slots=True)
class Activity:
    when: str
    label: str
    detail: str
    points: int
    status: str


@dataclass(frozen=True, slots=True)
class Progress:
    next_name: str
    points_needed: int
    percent: int


@dataclass(frozen=True, slots=True)
class Placed:
    name: str
    amount: str
    points: int


def _label(member: Member) -> str:
    name = " ".join(part for part in (member.first_name, member.last_name) if part)
    kind = "account" if member.is_account else "guest"
    if not name:
        return f"{member.email or f'Member {member.id}'} ({kind})"
    return f"{name} ({kind})"


async def _demo_shop(session: AsyncSession) -> Shop | None:
    return await ShopRepository(session).get_by_domain(DEMO_SHOP)


async def _members(session: AsyncSession, shop: Shop) -> list[Member]:
    result = await session.execute(
        select(Member)
        .where(Member.shop_id == shop.id, Member.redacted_at.is_(None))
        .order_by(Member.id)
    )
    return list(result.scalars())


async def _activity(session: AsyncSession, member: Member) -> list[Activity]:
    result = await session.execute(
        select(LedgerEntry)
        .where(LedgerEntry.member_id == member.id)
        .order_by(LedgerEntry.id.desc())
        .limit(ACTIVITY_LIMIT)
    )
    return [
        Activity(
            when=f"{entry.created_at:%Y-%m-%d %H:%M} UTC",
            label=KIND_LABELS.get(entry.kind, entry.kind.capitalize()),
            detail=entry.reason or "",
            points=entry.points,
            status=entry.status,
        )
        for entry in result.scalars()
    ]


def _progress(view: MemberOut, config: ProgramConfig) -> Progress | None:
    """How far between the current tier's threshold and the next one, in whole percent."""
    if view.tier is None or view.tier.next is None:
        return None
    thresholds = {level.name: level.threshold for level in config.tiers.levels}
    low = thresholds.get(view.tier.name, 0)
    high = thresholds.get(view.tier.next.name, low)
    reached = high - view.tier.next.points_needed
    span = max(high - low, 1)
    percent = min(max((reached - low) * 100 // span, 0), 100)
    return Progress(view.tier.next.name, view.tier.next.points_needed, percent)


async def _placed(session: AsyncSession, shop: Shop, order_id: str | None) -> Placed | None:
    if not order_id or not order_id.isdigit():
        return None
    order = await session.scalar(
        select(Order).where(Order.shop_id == shop.id, Order.order_id == order_id)
    )
    if order is None:
        return None
    return Placed(
        name=order.name or order.order_id,
        amount=f"{order.merchandise_amount:.2f} {order.currency}",
        points=order.points_earned,
    )


async def storefront(request: Request) -> Response:
    """`GET /demo?customer=<member id>`: what the chosen shopper sees."""
    state = get_state(request)
    params = request.query_params
    async with state.sessionmaker() as session:
        shop = await _demo_shop(session)
        if shop is None:
            return _page("not_seeded.html", 503, shop_domain=DEMO_SHOP)
        members = await _members(session, shop)
        chosen = next((m for m in members if str(m.id) == params.get("customer")), None)
        chosen = chosen or (members[0] if members else None)
        view = await member_out(session, shop, chosen) if chosen else None
        config = await current_config(session, shop)
        activity = await _activity(session, chosen) if chosen else []
        placed = await _placed(session, shop, params.get("placed"))
    page = _page(
        "storefront.html",
        widget_customer=chosen.customer_id if chosen and chosen.customer_id else "",
        widget_enabled=params.get("widget") != "off",  # the Lighthouse baseline
        shop_name=shop.name or shop.domain,
        shop_domain=shop.domain,
        currency=shop.currency,
        shoppers=[Shopper(member.id, _label(member)) for member in members],
        chosen_id=chosen.id if chosen else None,
        chosen_label=_label(chosen) if chosen else "",
        member=view,
        progress=_progress(view, config) if view else None,
        rewards=[reward for reward in config.rewards if reward.enabled],
        activity=activity,
        placed=placed,
        error=ERRORS.get(params.get("error", "")),
    )
    # The demo's stand-in for "logged in to the storefront": the proxy below reads it.
    if chosen is not None and chosen.customer_id:
        page.set_cookie(DEMO_CUSTOMER_COOKIE, chosen.customer_id, httponly=True, samesite="strict")
    else:
        page.delete_cookie(DEMO_CUSTOMER_COOKIE)
    return page


DEMO_CUSTOMER_COOKIE = "stamp_demo_customer"
DEMO_PROXY_PREFIX = "/demo/apps/stamp"


async def app_proxy(request: Request) -> Response:
    """A local stand-in for Shopify's app proxy, so the demo page runs the real widget.

    Like Shopify, it adds shop, logged_in_customer_id, path_prefix and timestamp, signs
    every parameter with the app secret, and forwards to `/proxy/...`.
    """
    settings = get_state(request).settings
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "signature"]
    params += [
        ("shop", DEMO_SHOP),
        ("logged_in_customer_id", request.cookies.get(DEMO_CUSTOMER_COOKIE, "")),
        ("path_prefix", DEMO_PROXY_PREFIX),
        ("timestamp", str(int(time.time()))),
    ]
    params.append(("signature", app_proxy_signature(settings.shopify_api_secret, params)))
    path = request.path_params["path"]
    async with self_client(request, settings) as client:
        upstream = await client.request(
            request.method,
            f"/proxy/{path}?{urlencode(params)}",
            content=await request.body(),
            headers={"content-type": request.headers.get("content-type", "application/json")},
        )
    headers = {
        name: value
        for name, value in upstream.headers.items()
        if name.lower() in {"content-type", "cache-control", "content-disposition"}
    }
    return Response(upstream.content, status_code=upstream.status_code, headers=headers)


def _amount(value: Any) -> Decimal | None:
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    exponent = amount.as_tuple().exponent
    if not amount.is_finite() or not isinstance(exponent, int) or exponent < -2:
        return None
    return amount if Decimal("0.01") <= amount <= MAX_AMOUNT else None


def _back(member_id: int | str | None, **extra: str) -> RedirectResponse:
    query = {"customer": str(member_id)} if member_id else {}
    return RedirectResponse(f"/demo?{urlencode({**query, **extra})}", status_code=303)


def _same_origin(request: Request) -> bool:
    """A form post from this page, not from another site the shopper has open."""
    if request.headers.get("sec-fetch-site") in {"cross-site", "same-site"}:
        return False
    origin = request.headers.get("origin")
    return origin in {None, "null"} or origin == f"{request.url.scheme}://{request.url.netloc}"


def _shopper_as_customer(member: Member) -> demo_seed.DemoCustomer | None:
    """The member as a Shopify customer record, or None for a guest (no customer id)."""
    if member.customer_id is None or not member.customer_id.isdigit():
        return None
    return demo_seed.DemoCustomer(
        key=f"member-{member.id}",
        customer_id=int(member.customer_id),
        first_name=member.first_name or "",
        last_name=member.last_name or "",
        email=member.email or "",
        state="enabled" if member.is_account else "disabled",
        city="Portland",
        province_code="ME",
        zip="04101",
    )


def self_client(request: Request, settings: Settings) -> httpx.AsyncClient:
    """An HTTP client to this app, in process: the request goes through routing and the
    receiver like any delivery, without depending on APP_URL reaching this process."""
    application = request.app
    lifespan_state = dict(request.scope.get("state") or {})

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        await application({**scope, "state": dict(lifespan_state)}, receive, send)

    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=asgi), base_url=settings.APP_URL, timeout=10.0
    )


async def place_order(request: Request) -> Response:
    """`POST /demo/orders`: deliver a signed `orders/paid` for the chosen shopper."""
    if not _same_origin(request):
        return _page("error.html", 403, message="Demo orders can only be placed from /demo.")
    state = get_state(request)
    form = await request.form()
    member_param = str(form.get("customer", ""))
    amount = _amount(form.get("amount", ""))
    async with state.sessionmaker() as session:
        shop = await _demo_shop(session)
        if shop is None:
            return _page("not_seeded.html", 503, shop_domain=DEMO_SHOP)
        member = await session.get(Member, int(member_param)) if member_param.isdigit() else None
        if member is None or member.shop_id != shop.id or not member.email:
            return _back(None, error="customer")
        if amount is None:
            return _back(member.id, error="amount")
        number = 1001 + int(
            await session.scalar(select(func.count(Order.id)).where(Order.shop_id == shop.id)) or 0
        )
    order_id = DEMO_ORDER_ID_BASE + secrets.randbelow(10**12)
    spec = demo_seed.OrderSpec(
        order_id=order_id,
        number=number,
        customer=_shopper_as_customer(member),
        email=member.email,
        items=((replace(demo_seed.DEMO_PURCHASE, price=amount), 1),),
        placed_at=utcnow(),
    )
    hook = demo_seed.Webhook(
        topic="orders/paid",
        webhook_id=str(uuid.uuid4()),
        event_id=str(uuid.uuid4()),
        triggered_at=utcnow(),
        payload=demo_seed.order_payload(spec),
    )
    async with self_client(request, state.settings) as client:
        try:
            await demo_seed.deliver(client, state.settings, hook)
        except demo_seed.SeedError:
            return _back(member.id, error="delivery")
    return _back(member.id, placed=str(order_id))


def mint_session_token(settings: Settings, shop: str = DEMO_SHOP) -> str:
    """An App Bridge-shaped session token for the demo shop (what Shopify's admin would mint)."""
    now = int(time.time())
    claims = {
        "iss": f"https://{shop}/admin",
        "dest": f"https://{shop}",
        "aud": settings.shopify_api_key,
        "sub": "1",
        "exp": now + SESSION_TOKEN_SECONDS,
        "nbf": now,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "sid": secrets.token_hex(16),
    }
    return jwt.encode(claims, settings.shopify_api_secret, algorithm="HS256")


async def open_admin(request: Request) -> Response:
    """`GET /demo/admin`: open the admin as the demo merchant, outside Shopify's frame.

    Shopify would mint a session token and install the app on the first embedded load; the
    demo mints one with the app secret and installs the same way (through the Admin API
    stand-in), then signs the visitor in with Stamp's own login link, as a WooCommerce
    merchant or anyone outside Shopify is.
    """
    from app.admin.auth import login_link
    from app.db import unit_of_work
    from app.integrations.shopify.signing import decode_session_token
    from app.shops.service import install_from_session_token

    state = get_state(request)
    settings = state.settings
    id_token = mint_session_token(settings)
    token = decode_session_token(id_token, settings.shopify_api_key, settings.shopify_api_secret)
    async with unit_of_work(state.sessionmaker) as session:
        shop = await install_from_session_token(state, session, token, id_token)
    return RedirectResponse(login_link(settings, shop), status_code=302)


async def session_token(request: Request) -> Response:
    """`POST /demo/session-token`: a fresh session token for admin fetches in the demo."""
    if not _same_origin(request):
        return JSONResponse({"error": {"code": "forbidden", "message": "Same origin only"}}, 403)
    token = mint_session_token(get_state(request).settings)
    return JSONResponse(
        {"token": token, "expires_in": SESSION_TOKEN_SECONDS},
        headers={DEMO_HEADER: DEMO_HEADER_VALUE, "Cache-Control": "no-store"},
    )


routes: list[BaseRoute] = [
    Route("/demo", storefront, methods=["GET"]),
    Route("/demo/orders", place_order, methods=["POST"]),
    Route("/demo/admin", open_admin, methods=["GET"]),
    Route("/demo/session-token", session_token, methods=["POST"]),
    Route(DEMO_PROXY_PREFIX + "/{path:path}", app_proxy, methods=["GET", "POST"]),
    *shopify_admin_routes,
]
