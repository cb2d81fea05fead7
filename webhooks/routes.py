from __future__ import annotations

from starlette.routing import BaseRoute, Route

from webhooks.shopify.receiver import receive as shopify_receive

routes: list[BaseRoute] = [
    Route("/webhooks/shopify", shopify_receive, methods=["POST"]),
]
