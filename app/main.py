"""The ASGI app: `app.main:app`, configured only by environment variables."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from app.errors import AppError
from app.limits.body import BodySizeLimit
from app.limits.rate import StorefrontRateLimit
from app.observability.middleware import ObservabilityMiddleware
from app.settings import Settings, get_settings
from app.state import State, get_state


def error_response(
    status_code: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status_code, headers=headers
    )


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    return error_response(exc.status_code, exc.code, exc.message, getattr(exc, "headers", None))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
    code = codes.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail))


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when the database answers and the queue storage is reachable."""
    from app.queue import huey

    state = get_state(request)
    checks: dict[str, str] = {}
    try:
        async with state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        huey.pending_count()
        checks["queue"] = "ok"
    except Exception as exc:
        checks["queue"] = f"error: {type(exc).__name__}"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


def _routes(settings: Settings) -> list[BaseRoute]:
    from app.admin.routes import routes as admin_routes
    from app.api.routes import routes as api_routes
    from app.integrations.woocommerce.routes import routes as woocommerce_routes
    from app.observability.routes import routes as observability_routes
    from app.referrals.routes import proxy_routes as referral_proxy_routes
    from app.shops.routes import routes as shop_routes
    from webhooks.routes import build_routes as webhook_routes
    from widgets.routes import routes as widget_routes

    extra: list[BaseRoute] = []
    if settings.DEMO_MODE:
        from app.demo.routes import routes as demo_routes

        extra.extend(demo_routes)

    return [
        *extra,
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        *observability_routes,
        *shop_routes,
        *webhook_routes(settings.BENCH_ENDPOINTS),
        *api_routes,
        *widget_routes,
        *referral_proxy_routes,
        *woocommerce_routes,
        *admin_routes,
    ]


def _middleware(settings: Settings) -> list[Middleware]:
    """Pure ASGI and cheap: they run in front of the webhook intake's hot path.

    Observability is outermost, so the 413s and 429s of the limits are counted and logged.
    """
    return [
        Middleware(ObservabilityMiddleware, access_log=settings.ACCESS_LOG),
        Middleware(
            BodySizeLimit,
            webhook_limit=settings.WEBHOOK_MAX_BODY_BYTES,
            request_limit=settings.REQUEST_MAX_BODY_BYTES,
        ),
        Middleware(
            StorefrontRateLimit,
            secret=settings.shopify_api_secret,
            rate=settings.RATE_LIMIT_RATE,
            burst=settings.RATE_LIMIT_BURST,
            redis_url=settings.rate_limit_redis_url,
            trusted_hops=settings.TRUSTED_PROXY_HOPS,
        ),
    ]


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        state = State.create(settings)
        # Everything imported so far lives as long as the process: move it out of the
        # collector's reach, so a full collection does not walk it while a request waits.
        gc.freeze()
        try:
            yield {"stamp": state}
        finally:
            await state.aclose()

    return Starlette(
        routes=_routes(settings),
        middleware=_middleware(settings),
        lifespan=lifespan,
        exception_handlers={AppError: _app_error, HTTPException: _http_error},
    )


app = create_app()
