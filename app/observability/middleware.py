"""One pure ASGI middleware for request ids, the access log and request metrics.

Pure ASGI (not `BaseHTTPMiddleware`) because the webhook intake answers thousands of
requests a second: it reads the headers once, wraps `send` to learn the status and add
`X-Request-Id`, and does no other work per request.
"""

from __future__ import annotations

import logging
import os
import re
import time
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.logs import request_id_var
from app.observability.metrics import HTTP_DURATION, HTTP_REQUESTS, WEBHOOK_LAG

access_logger = logging.getLogger("stamp.access")

# An incoming id is kept (so a proxy's or caller's id follows the request) only when it
# is short and plain: it is echoed in a header and written to every log line.
_SAFE_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_WEBHOOK_PREFIX = "/webhooks/"


def route_template(scope: Scope) -> str:
    """The matched route's path template (bounded label values), or `unmatched`."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


def webhook_lag(triggered_at: bytes, now: float) -> float | None:
    """Seconds from the platform's trigger time to now; None when the header is unreadable."""
    try:
        triggered = datetime.fromisoformat(triggered_at.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    if triggered.tzinfo is None:
        triggered = triggered.replace(tzinfo=UTC)
    return max(0.0, now - triggered.timestamp())


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log
        # `Counter.labels()` validates and locks on every call; its children are cached
        # here (label values are bounded: route templates, statuses, sources).
        self._requests: dict[tuple[str, str, int], Any] = {}
        self._durations: dict[str, Any] = {}
        self._lags: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming: bytes | None = None
        triggered_at: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value
            elif name == b"x-shopify-triggered-at":
                triggered_at = value
        if incoming is not None and _SAFE_ID.fullmatch(incoming):
            request_id = incoming.decode("ascii")
        else:
            request_id = os.urandom(16).hex()
        header = (b"x-request-id", request_id.encode("ascii"))
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = request_id_var.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, status, started, triggered_at)
            request_id_var.reset(token)

    def _record(
        self, scope: Scope, status: int, started: float, triggered_at: bytes | None
    ) -> None:
        elapsed = time.perf_counter() - started
        route = route_template(scope)
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        key = (method, route, status)
        counter = self._requests.get(key)
        if counter is None:
            counter = self._requests[key] = HTTP_REQUESTS.labels(method, route, str(status))
        counter.inc()
        duration = self._durations.get(route)
        if duration is None:
            duration = self._durations[route] = HTTP_DURATION.labels(route)
        duration.observe(elapsed)
        path: str = scope["path"]
        if triggered_at is not None and 200 <= status < 300 and path.startswith(_WEBHOOK_PREFIX):
            lag = webhook_lag(triggered_at, time.time())
            if lag is not None:
                source = path[len(_WEBHOOK_PREFIX) :].split("/", 1)[0]
                observer = self._lags.get(source)
                if observer is None:
                    observer = self._lags[source] = WEBHOOK_LAG.labels(source)
                observer.observe(lag)
        if self.access_log and access_logger.isEnabledFor(logging.INFO):
            access_logger.info(
                "%s %s %d",
                method,
                path,
                status,
                extra={
                    "method": method,
                    "path": path,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "request_id": request_id_var.get(),
                },
            )
