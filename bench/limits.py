"""What the edge limits cost per request, in process: `python -m bench.limits`.

The body-size and rate-limit middlewares sit in front of the webhook intake and the widget
JSON. This times one ASGI request through each (an app that answers at once stands behind
them) against the same request with no middleware, so the difference is their cost:
- a webhook with an acceptable Content-Length (the intake hot path: a header scan);
- a signed app-proxy widget read (an HMAC over the query and one in-process bucket).
Target: under 20 µs added per request, small beside a webhook's ~1 ms of work.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlencode

from starlette.types import Message, Receive, Scope, Send

from app.integrations.shopify.signing import app_proxy_signature
from app.limits.body import BodySizeLimit
from app.limits.rate import MemoryBackend, StorefrontRateLimit

SECRET = "bench-limits-secret"
ROUNDS = 20_000
TARGET_MICROSECONDS = 20.0


async def answer(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def stacked() -> Any:
    rate = StorefrontRateLimit(
        answer, secret=SECRET, rate=1e9, burst=10**9, backend=MemoryBackend()
    )
    return BodySizeLimit(rate, webhook_limit=5 * 1024 * 1024, request_limit=1024 * 1024)


def webhook_scope() -> Scope:
    return {
        "type": "http",
        "method": "POST",
        "path": "/webhooks/shopify",
        "query_string": b"",
        "client": ("127.0.0.1", 50000),
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", b"4096"),
            (b"x-shopify-topic", b"orders/paid"),
            (b"x-shopify-hmac-sha256", b"x" * 44),
        ],
    }


def proxy_scope() -> Scope:
    params = {
        "shop": "some-shop.myshopify.com",
        "logged_in_customer_id": "207119551",
        "path_prefix": "/apps/stamp",
        "timestamp": str(int(time.time())),
    }
    params["signature"] = app_proxy_signature(SECRET, params.items())
    return {
        "type": "http",
        "method": "GET",
        "path": "/proxy/api/state",
        "query_string": urlencode(params).encode(),
        "client": ("127.0.0.1", 50000),
        "headers": [(b"x-forwarded-for", b"203.0.113.9")],
    }


async def per_request(app: Any, scope: Scope) -> float:
    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        return None

    for _ in range(1000):
        await app(scope, receive, send)
    started = time.perf_counter()
    for _ in range(ROUNDS):
        await app(scope, receive, send)
    return (time.perf_counter() - started) / ROUNDS * 1e6


async def main() -> None:
    limited = stacked()
    print(f"{'request':<34}{'bare µs':>10}{'limited µs':>12}{'added µs':>10}  target")
    for label, scope in (("webhook (Content-Length 4 KB)", webhook_scope()),
                         ("widget read (signed app proxy)", proxy_scope())):  # fmt: skip
        bare = await per_request(answer, scope)
        with_limits = await per_request(limited, scope)
        added = with_limits - bare
        verdict = "met" if added < TARGET_MICROSECONDS else "MISSED"
        print(
            f"{label:<34}{bare:>10.2f}{with_limits:>12.2f}{added:>10.2f}  "
            f"< {TARGET_MICROSECONDS:.0f} µs {verdict}"
        )


if __name__ == "__main__":
    asyncio.run(main())
