"""A stand-in storefront for the widget's browser tests, in three layers.

1. Storefront pages (`/`, `/pages/rewards`) rendered from `tests/widgets/pages/` with the
   markup the theme app extension renders, and the widget's files at `/widgets/static/`.
2. `/apps/stamp/...`: what Shopify's app proxy does. It knows the shopper from the storefront
   session (here the `fake_customer` cookie the page sets), strips cookies, adds `shop`,
   `logged_in_customer_id`, `path_prefix`, `timestamp` and a real `signature`, and forwards
   to `{upstream}/proxy/...` (the `[app_proxy] url` in shopify.app.toml).
3. `FakeLoyalty`: a fake of the widget's JSON contract at `/proxy/api/...`.

To run the browser tests against the real app, pass `upstream=` the app's ASGI callable to
`build_app`; the storefront and proxy layers stay as they are.
"""

from __future__ import annotations

import copy
import hashlib
import html
import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from string import Template
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from app.integrations.shopify.signing import app_proxy_signature

SHOP = "stamp-test.myshopify.com"
PATH_PREFIX = "/apps/stamp"
PAGES = Path(__file__).parent / "pages"
STATIC = Path(__file__).resolve().parents[2] / "widgets" / "static"
HOSTILE = "<img src=x onerror=alert(1)>"
PROXY_PARAMS = {"shop", "logged_in_customer_id", "path_prefix", "timestamp", "signature"}
PASSED_HEADERS = {"content-type", "content-disposition", "cache-control"}

MEMBER = "1001"  # Ada: Silver, 1,250 points, 150 pending
HOSTILE_MEMBER = "1002"  # a first name, reward name and referral URL that try to run script
GUEST = ""

REWARDS: list[dict[str, Any]] = [
    {"id": "r-ship", "cost": 300, "en": "Free shipping", "fr": "Livraison offerte"},
    {"id": "r-5", "cost": 500, "en": "$5 off your order", "fr": "5 $ de réduction"},
    {"id": "r-gold", "cost": 800, "en": "Gold gift box", "fr": "Coffret Gold", "tier": "Gold"},
    {"id": "r-10", "cost": 1000, "en": "$10 off your order", "fr": "10 $ de réduction"},
    {"id": "r-25", "cost": 2500, "en": "$25 off your order", "fr": "25 $ de réduction"},
]
WAYS_TO_EARN = {
    "en": [
        ("Shop with us", "1 point for every $1 you spend"),
        ("Create an account", "100 points welcome bonus"),
        ("Write a review", "50 points, 100 with a photo"),
        ("Refer a friend", "500 points when they place their first order"),
    ],
    "fr": [
        ("Faites vos achats", "1 point pour chaque dollar dépensé"),
        ("Créez un compte", "100 points de bienvenue"),
        ("Laissez un avis", "50 points, 100 avec une photo"),
        ("Parrainez un ami", "500 points à sa première commande"),
    ],
}
KINDS = ["earn", "earn", "review", "earn", "reverse", "earn", "redeem", "signup"]


def _history(count: int) -> list[dict[str, Any]]:
    start = datetime(2025, 6, 30, 12, tzinfo=UTC)
    rows = []
    for n in range(count):
        kind = KINDS[n % len(KINDS)]
        points = {"earn": 40 + n * 5, "review": 50, "reverse": -25, "redeem": -500, "signup": 100}[
            kind
        ]
        rows.append(
            {
                "points": points,
                "kind": kind,
                "reason": f"Order #{1100 - n}" if kind in {"earn", "reverse"} else None,
                "created_at": (start - timedelta(days=3 * n)).isoformat().replace("+00:00", "Z"),
                "code": "STAMP-OLD1" if kind == "redeem" else None,
            }
        )
    return rows


MEMBERS: dict[str, dict[str, Any]] = {
    MEMBER: {
        "customer_id": MEMBER,
        "first_name": "Ada",
        "points_balance": 1250,
        "pending_points": 150,
        "lifetime_points": 3250,
        "tier": {
            "name": "Silver",
            "multiplier": "1.25",
            "next": {"name": "Gold", "points_needed": 750},
        },
        "referral_url": f"https://{SHOP}/apps/stamp/r/ADA7K2Q",
        "_history": _history(23),
    },
    HOSTILE_MEMBER: {
        "customer_id": HOSTILE_MEMBER,
        "first_name": HOSTILE,
        "points_balance": 900,
        "pending_points": 0,
        "lifetime_points": 900,
        "tier": {"name": "<b>Bronze</b>", "multiplier": "1", "next": None},
        "referral_url": "javascript:alert(3)",
        "_history": [],
        "_rewards": [{"id": "r-x", "cost": 100, "en": "<script>alert(2)</script>"}],
    },
}


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


class FakeLoyalty:
    """The widget's JSON contract, in memory. `reset()` between tests."""

    def __init__(self) -> None:
        self.members: dict[str, dict[str, Any]] = {}
        self.redemptions: dict[str, dict[str, Any]] = {}
        self.redeem_posts: list[dict[str, Any]] = []
        self.failing_rewards: set[str] = set()
        self.forwarded: list[dict[str, str]] = []
        self.reset()

    def reset(self) -> None:
        self.members = copy.deepcopy(MEMBERS)
        self.redemptions.clear()
        self.redeem_posts.clear()
        self.failing_rewards.clear()
        self.forwarded.clear()

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/proxy/api/state", self.state),
                Route("/proxy/api/redeem", self.redeem, methods=["POST"]),
                Route("/proxy/api/history", self.history),
                Route("/proxy/api/export", self.export),
                Route("/proxy/api/leave", self.leave, methods=["POST"]),
            ]
        )

    def _member(self, request: Request) -> dict[str, Any] | None:
        self.forwarded.append(dict(request.query_params))
        return self.members.get(request.query_params.get("logged_in_customer_id", ""))

    def _catalogue(self, member: dict[str, Any] | None) -> list[dict[str, Any]]:
        return REWARDS + (member or {}).get("_rewards", [])

    async def state(self, request: Request) -> Response:
        member = self._member(request)
        locale = "fr" if request.query_params.get("locale", "").startswith("fr") else "en"
        balance = member["points_balance"] if member else 0
        tier = ((member or {}).get("tier") or {}).get("name")
        rewards = []
        for reward in self._catalogue(member):
            locked = reward.get("tier") not in (None, tier)
            rewards.append(
                {
                    "id": reward["id"],
                    "name": reward.get(locale, reward["en"]),
                    "points_cost": reward["cost"],
                    "affordable": bool(member) and not locked and balance >= reward["cost"],
                    "locked_reason": f"{reward['tier']} members only" if locked else None,
                }
            )
        ways = [{"title": title, "description": text} for title, text in WAYS_TO_EARN[locale]]
        if member and member["customer_id"] == HOSTILE_MEMBER:
            ways.append({"title": HOSTILE, "description": "<i>not italic</i>"})
        public = {k: v for k, v in member.items() if not k.startswith("_")} if member else None
        return JSONResponse(
            {
                "shop": {"name": "Maple & Moss", "currency": "USD", "locale": locale},
                "member": public,
                "ways_to_earn": ways,
                "rewards": rewards,
                "urls": {
                    "login": "/account/login",
                    "register": "/account/register",
                    "rewards_page": "/pages/rewards",
                },
            }
        )

    async def redeem(self, request: Request) -> Response:
        member = self._member(request)
        body = await request.json()
        self.redeem_posts.append(body)
        if member is None:
            return _error(401, "not_a_member", "Sign in to redeem rewards.")
        key = f"{member['customer_id']}:{body.get('request_id')}"
        if key in self.redemptions:
            return JSONResponse(self.redemptions[key])
        reward = next(
            (r for r in self._catalogue(member) if r["id"] == body.get("reward_id")), None
        )
        if reward is None:
            return _error(404, "unknown_reward", "This reward no longer exists.")
        if member["points_balance"] < reward["cost"]:
            return _error(409, "insufficient_points", "Not enough points.")
        if reward["id"] in self.failing_rewards:
            return _error(
                502, "discount_failed", "We couldn't create your code; your points were returned"
            )
        member["points_balance"] -= reward["cost"]
        code = "STAMP-" + hashlib.sha256(key.encode()).hexdigest()[:8].upper()
        result = {
            "code": code,
            "points_spent": reward["cost"],
            "expires_at": "2030-01-31T23:59:59Z",
            "points_balance": member["points_balance"],
        }
        member["_history"].insert(
            0,
            {
                "points": -reward["cost"],
                "kind": "redeem",
                "reason": reward["en"],
                "created_at": datetime.now(UTC).isoformat(),
                "code": code,
            },
        )
        self.redemptions[key] = result
        return JSONResponse(result)

    async def history(self, request: Request) -> Response:
        member = self._member(request)
        if member is None:
            return _error(401, "not_a_member", "Sign in to see your history.")
        start = int(request.query_params.get("cursor") or 0)
        rows = member["_history"][start : start + 10]
        more = start + 10 < len(member["_history"])
        return JSONResponse({"data": rows, "next_cursor": str(start + 10) if more else None})

    async def export(self, request: Request) -> Response:
        member = self._member(request)
        if member is None:
            return _error(401, "not_a_member", "Sign in to download your data.")
        public = {k: v for k, v in member.items() if not k.startswith("_")}
        body = json.dumps({"member": public, "history": member["_history"]}, indent=2)
        return Response(
            body,
            media_type="application/json",
            headers={"Content-Disposition": 'attachment; filename="stamp-data.json"'},
        )

    async def leave(self, request: Request) -> Response:
        member = self._member(request)
        body = await request.json()
        if member is None:
            return _error(401, "not_a_member", "Sign in first.")
        if body.get("confirm") is not True:
            return _error(400, "confirmation_required", "Confirm to leave the program.")
        del self.members[member["customer_id"]]
        return JSONResponse({"left": True})


def _page(name: str, request: Request, **values: str) -> HTMLResponse:
    query = request.query_params
    customer = query.get("customer", GUEST)
    points = query.get("points", "")
    badge = ""
    if query.get("badge") and customer:
        # What snippets/points-badge.liquid renders, with or without the metafield.
        badge = (
            f'<span class="stamp-badge" data-stamp-badge data-points="{html.escape(points)}">'
            f"{html.escape(points)} points</span>"
            if points
            else '<span class="stamp-badge" data-stamp-badge hidden></span>'
        )
    fields = {
        "origin": str(request.base_url).rstrip("/"),
        "locale": query.get("locale", "en"),
        "customer": customer,
        "points": points,
        "launcher_badge": "on" if query.get("badge") else "",
        **values,
    }
    text = Template((PAGES / name).read_text(encoding="utf-8")).substitute(
        {key: html.escape(value) for key, value in fields.items()}, badge_html=badge
    )
    response = HTMLResponse(text)
    # The storefront session Shopify's proxy reads; the fake proxy turns it into
    # `logged_in_customer_id` (and `fake_fail` makes the proxy answer with that status).
    response.set_cookie("fake_customer", customer, httponly=True, samesite="lax")
    response.set_cookie("fake_fail", query.get("fail", ""), httponly=True, samesite="lax")
    return response


def build_app(fake: FakeLoyalty, upstream: ASGIApp | None = None) -> Starlette:
    """The test storefront; `upstream` is what the app proxy forwards to (default: the fake)."""
    target = upstream or fake.app()
    secret = os.environ.get("SHOPIFY_API_SECRET", "test-shopify-secret")

    async def storefront(request: Request) -> Response:
        return _page("storefront.html", request)

    async def rewards_page(request: Request) -> Response:
        return _page("rewards.html", request, accent=request.query_params.get("accent", "#0f766e"))

    async def proxy(request: Request) -> Response:
        fail = request.cookies.get("fake_fail", "")
        if fail.isdigit():
            return _error(int(fail), "unavailable", "Service unavailable")
        params = [(k, v) for k, v in request.query_params.multi_items() if k not in PROXY_PARAMS]
        params += [
            ("shop", SHOP),
            ("logged_in_customer_id", request.cookies.get("fake_customer", "")),
            ("path_prefix", PATH_PREFIX),
            ("timestamp", str(int(time.time()))),
        ]
        params.append(("signature", app_proxy_signature(secret, params)))
        transport = httpx.ASGITransport(app=target)
        async with httpx.AsyncClient(transport=transport, base_url="https://stamp.test") as client:
            answer = await client.request(
                request.method,
                "/proxy/" + request.path_params["path"],
                params=params,
                content=await request.body(),
                headers={"content-type": request.headers.get("content-type", "text/plain")},
            )
        headers = {k: v for k, v in answer.headers.items() if k.lower() in PASSED_HEADERS}
        return Response(answer.content, status_code=answer.status_code, headers=headers)

    return Starlette(
        routes=[
            Route("/", storefront),
            Route("/pages/rewards", rewards_page),
            Route(PATH_PREFIX + "/{path:path}", proxy, methods=["GET", "POST"]),
            Mount("/widgets/static", StaticFiles(directory=STATIC)),
        ]
    )
