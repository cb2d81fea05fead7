"""`GET /metrics`: the Prometheus text format, for an operator's scraper."""

from __future__ import annotations

import hmac

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.errors import NotFound, Unauthorized
from app.observability.metrics import render
from app.observability.service import snapshot
from app.state import get_state


async def metrics(request: Request) -> Response:
    """Open in dev and test; with METRICS_TOKEN set, only with `Authorization: Bearer <it>`.

    Production without a token does not serve metrics at all: route counts and backlogs
    are for the operator, not for anyone who finds the URL.
    """
    state = get_state(request)
    token = state.settings.METRICS_TOKEN
    if token is None and state.settings.is_production:
        raise NotFound("Set METRICS_TOKEN to serve /metrics.")
    if token is not None:
        sent = request.headers.get("authorization", "")
        expected = "Bearer " + token.get_secret_value()
        if not hmac.compare_digest(sent.encode(), expected.encode()):
            raise Unauthorized("Send Authorization: Bearer METRICS_TOKEN.")
    body = render(await snapshot(state))
    return Response(body, media_type=CONTENT_TYPE_LATEST)


routes = [Route("/metrics", metrics, methods=["GET"])]
