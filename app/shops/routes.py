"""Install routes for the authorization-code grant (`/auth/shopify` and its callback).

Shopify-managed installs arrive through token exchange on the embedded admin instead
(`app.admin.routes`); these serve custom distribution, re-authorization and tests.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from app.db import unit_of_work
from app.models.base import utcnow
from app.shops import service
from app.state import get_state


async def start_install(request: Request) -> Response:
    """Send the merchant to Shopify's consent screen with a fresh single-use state."""
    state = get_state(request)
    params = request.query_params.multi_items()
    if "hmac" in request.query_params:
        service.verify_hmac(state.settings, params)
    shop = service.shop_domain(request.query_params.get("shop"))
    async with unit_of_work(state.sessionmaker) as session:
        url = await service.begin_install(state.settings, session, shop)
    return RedirectResponse(url, status_code=302)


async def install_callback(request: Request) -> Response:
    """Shopify's redirect back after consent: verify everything, then install in one commit."""
    state = get_state(request)
    callback = service.verify_callback(state.settings, request.query_params.multi_items(), utcnow())
    async with unit_of_work(state.sessionmaker) as session:
        shop = await service.complete_install(state, session, callback)
    return RedirectResponse(
        service.embedded_admin_url(state.settings, shop.domain, callback.host), status_code=302
    )


routes: list[BaseRoute] = [
    Route("/auth/shopify", start_install, methods=["GET"]),
    Route(service.CALLBACK_PATH, install_callback, methods=["GET"]),
]
