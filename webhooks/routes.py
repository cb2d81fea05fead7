from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from app.integrations.shopify.signing import verify_webhook
from app.state import get_state
from webhooks.shopify.receiver import read_body
from webhooks.shopify.receiver import receive as shopify_receive


async def bare_shopify(request: Request) -> Response:
    """Benchmark baseline: read the body and check its HMAC, nothing else."""
    body = await read_body(request)
    secret = get_state(request).settings.shopify_api_secret
    if body is None or not verify_webhook(
        secret, body, request.headers.get("x-shopify-hmac-sha256")
    ):
        return PlainTextResponse("invalid", status_code=401)
    return PlainTextResponse("ok")


def build_routes(bench_endpoints: bool) -> list[BaseRoute]:
    from webhooks.judgeme.receiver import routes as judgeme_routes
    from webhooks.segment.receiver import routes as segment_routes
    from webhooks.woocommerce.receiver import receive as woocommerce_receive

    routes: list[BaseRoute] = [
        Route("/webhooks/shopify", shopify_receive, methods=["POST"]),
        Route("/webhooks/woocommerce/{shop_id}", woocommerce_receive, methods=["POST"]),
        *judgeme_routes,
        *segment_routes,
    ]
    if bench_endpoints:
        routes.append(Route("/webhooks/bench/bare", bare_shopify, methods=["POST"]))
    return routes
