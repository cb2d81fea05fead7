"""A small local stand-in for the Shopify Admin API, so the demo redeems without the internet.

`stamp demo` points `SHOPIFY_ADMIN_URL` at `{APP_URL}/demo/shopify-admin/{shop}`, so the
real clients (token requests, the shop query, discount creation) call these routes instead
of Shopify. Answers follow Shopify's shapes closely enough for those clients and nothing
more; every response says in a header that it is the stand-in. Only mounted in DEMO_MODE.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from app.demo import (
    DEMO_CURRENCY,
    DEMO_HEADER,
    DEMO_HEADER_VALUE,
    DEMO_SHOP,
    DEMO_SHOP_EMAIL,
    DEMO_SHOP_ID,
    DEMO_SHOP_NAME,
    DEMO_TIMEZONE,
)
from app.integrations.shopify import signing
from app.models.base import utcnow
from app.state import get_state

PREFIX = "/demo/shopify-admin"
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
MAX_QUERY_COST = 2000.0
RESTORE_RATE = 100.0
_VERSION_RE = re.compile(r"^\d{4}-\d{2}$|^unstable$")
_OPERATIONS = (
    "discountCodeBasicCreate",
    "discountCodeFreeShippingCreate",
    "codeDiscountNodeByCode",
    "shop",
)


def _json(body: Any, status_code: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status_code, headers={DEMO_HEADER: DEMO_HEADER_VALUE})


def _shop(request: Request) -> str | None:
    shop = str(request.path_params["shop"]).lower()
    return shop if signing.is_valid_shop_domain(shop) else None


def _not_found() -> JSONResponse:
    return _json({"errors": "Not Found"}, 404)


def _numeric_id(*parts: str) -> int:
    """A stable, Shopify-sized numeric id (13 digits) derived from the given parts."""
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return 1_000_000_000_000 + int.from_bytes(digest[:6], "big") % 9_000_000_000_000


async def _body(request: Request) -> dict[str, Any]:
    """JSON or form body, as Shopify's token endpoint accepts both."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = await request.json()
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


async def access_token(request: Request) -> Response:
    """`/admin/oauth/access_token`: code, token-exchange and refresh grants get a fake token."""
    shop = _shop(request)
    if shop is None:
        return _not_found()
    settings = get_state(request).settings
    body = await _body(request)
    if body.get("client_id") != settings.shopify_api_key or not secrets.compare_digest(
        str(body.get("client_secret", "")), settings.shopify_api_secret
    ):
        return _json(
            {"error": "invalid_client", "error_description": "Client credentials are invalid"}, 400
        )
    grant = body.get("grant_type")
    if grant == TOKEN_EXCHANGE_GRANT:
        try:
            token = signing.decode_session_token(
                str(body.get("subject_token", "")),
                settings.shopify_api_key,
                settings.shopify_api_secret,
            )
        except signing.SessionTokenError as exc:
            return _json({"error": "invalid_subject_token", "error_description": str(exc)}, 400)
        if token.shop != shop:
            return _json(
                {
                    "error": "invalid_subject_token",
                    "error_description": "Token is for another shop",
                },
                400,
            )
    elif grant == "refresh_token":
        if not str(body.get("refresh_token", "")).startswith("shprt_demo_"):
            return _json(
                {"error": "invalid_grant", "error_description": "Refresh token is invalid"}, 400
            )
    elif not body.get("code"):
        return _json(
            {"error": "invalid_request", "error_description": "Missing code or grant_type"}, 400
        )
    answer: dict[str, Any] = {
        "access_token": "shpat_demo_" + secrets.token_hex(16),
        "scope": settings.SHOPIFY_SCOPES,
    }
    if str(body.get("expiring", "")) == "1" or grant == "refresh_token":
        answer.update(
            expires_in=3600,
            refresh_token="shprt_demo_" + secrets.token_hex(16),
            refresh_token_expires_in=7_776_000,
        )
    return _json(answer)


def _extensions(cost: float) -> dict[str, Any]:
    return {
        "cost": {
            "requestedQueryCost": cost,
            "actualQueryCost": cost,
            "throttleStatus": {
                "maximumAvailable": MAX_QUERY_COST,
                "currentlyAvailable": MAX_QUERY_COST - cost,
                "restoreRate": RESTORE_RATE,
            },
        }
    }


def _shop_object(shop: str) -> dict[str, Any]:
    if shop == DEMO_SHOP:
        return {
            "id": DEMO_SHOP_ID,
            "name": DEMO_SHOP_NAME,
            "email": DEMO_SHOP_EMAIL,
            "currencyCode": DEMO_CURRENCY,
            "ianaTimezone": DEMO_TIMEZONE,
            "myshopifyDomain": shop,
        }
    handle = shop.removesuffix(".myshopify.com")
    return {
        "id": f"gid://shopify/Shop/{_numeric_id('shop', shop)}",
        "name": handle.replace("-", " ").title(),
        "email": f"owner@{handle}.example",
        "currencyCode": DEMO_CURRENCY,
        "ianaTimezone": DEMO_TIMEZONE,
        "myshopifyDomain": shop,
    }


def _discount_input(variables: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The (variable name, input object) holding the discount: the first object with `code`."""
    for name, value in variables.items():
        if isinstance(value, dict) and "code" in value:
            return name, value
    for name, value in variables.items():
        if isinstance(value, dict):
            return name, value
    return "input", {}


def _codes(request: Request) -> dict[tuple[str, str], str]:
    """Codes created so far, per app instance: (shop, upper-cased code) → node id."""
    store: dict[tuple[str, str], str] | None = getattr(request.app.state, "demo_discounts", None)
    if store is None:
        store = {}
        request.app.state.demo_discounts = store
    return store


def _discount_create(
    request: Request, shop: str, operation: str, variables: dict[str, Any]
) -> dict[str, Any]:
    name, discount = _discount_input(variables)
    code = str(discount.get("code") or "").strip()
    errors: list[dict[str, Any]] = []
    if not code:
        errors.append({"field": [name, "code"], "code": "BLANK", "message": "Code can't be blank"})
    elif len(code) > 255:
        errors.append({"field": [name, "code"], "code": "TOO_LONG", "message": "Code is too long"})
    elif (shop, code.upper()) in _codes(request):
        errors.append(
            {
                "field": [name, "code"],
                "code": "TAKEN",
                "message": "Code must be unique. Please try a different code.",
            }
        )
    if errors:
        return {operation: {"codeDiscountNode": None, "userErrors": errors}}
    number = _numeric_id("discount", shop, code.upper())
    node_id = f"gid://shopify/DiscountCodeNode/{number}"
    _codes(request)[(shop, code.upper())] = node_id
    typename = (
        "DiscountCodeFreeShipping"
        if operation == "discountCodeFreeShippingCreate"
        else "DiscountCodeBasic"
    )
    code_discount: dict[str, Any] = {
        "__typename": typename,
        "title": discount.get("title") or code,
        "status": "ACTIVE",
        "startsAt": discount.get("startsAt") or utcnow().isoformat(),
        "endsAt": discount.get("endsAt"),
        "usageLimit": discount.get("usageLimit"),
        "appliesOncePerCustomer": bool(discount.get("appliesOncePerCustomer", False)),
        "asyncUsageCount": 0,
        "codes": {
            "nodes": [
                {
                    "id": f"gid://shopify/DiscountRedeemCode/{number}",
                    "code": code,
                    "asyncUsageCount": 0,
                }
            ]
        },
    }
    return {
        operation: {
            "codeDiscountNode": {"id": node_id, "codeDiscount": code_discount},
            "userErrors": [],
        }
    }


async def graphql(request: Request) -> Response:
    """`/admin/api/{version}/graphql.json`: the shop query, the two discount mutations and
    the code lookup a redemption uses when a create's answer was lost."""
    shop = _shop(request)
    if shop is None or not _VERSION_RE.match(str(request.path_params["version"])):
        return _not_found()
    if not request.headers.get("x-shopify-access-token", "").strip():
        return _json(
            {
                "errors": "[API] Invalid API key or access token "
                "(unrecognized login or wrong password)"
            },
            401,
        )
    try:
        payload = await request.json()
    except ValueError:
        return _json({"errors": {"query": "Required parameter missing or invalid"}}, 400)
    query = str(payload.get("query", "")) if isinstance(payload, dict) else ""
    raw_variables = payload.get("variables") if isinstance(payload, dict) else None
    variables = raw_variables if isinstance(raw_variables, dict) else {}
    operation = next((name for name in _OPERATIONS if re.search(rf"\b{name}\b", query)), None)
    if operation is None:
        return _json(
            {
                "errors": [
                    {
                        "message": "The demo stand-in answers only shop, "
                        "codeDiscountNodeByCode, discountCodeBasicCreate and "
                        "discountCodeFreeShippingCreate",
                        "extensions": {"code": "undefinedField"},
                    }
                ]
            }
        )
    if operation == "shop":
        return _json({"data": {"shop": _shop_object(shop)}, "extensions": _extensions(1.0)})
    if operation == "codeDiscountNodeByCode":
        node_id = _codes(request).get((shop, str(variables.get("code", "")).strip().upper()))
        node = {"id": node_id} if node_id else None
        return _json({"data": {operation: node}, "extensions": _extensions(1.0)})
    data = _discount_create(request, shop, operation, variables)
    return _json({"data": data, "extensions": _extensions(10.0)})


routes: list[BaseRoute] = [
    Route(f"{PREFIX}/{{shop}}/admin/oauth/access_token", access_token, methods=["POST"]),
    Route(f"{PREFIX}/{{shop}}/admin/api/{{version}}/graphql.json", graphql, methods=["POST"]),
]
