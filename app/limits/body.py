"""Refuse oversized request bodies at the edge, before any handler reads them.

A pure ASGI middleware, because it sits in front of the webhook intake (thousands of
requests a second): a request with an acceptable `Content-Length` passes through
untouched (the server already holds the body to that length); one above the limit is
answered 413 without reading a byte; a chunked body is counted as it streams in and
reading stops at the first chunk past the limit.
"""

from __future__ import annotations

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

WEBHOOK_PREFIX = "/webhooks/"


def body_limit(path: str, webhook_limit: int, request_limit: int) -> int:
    """Webhooks carry whole orders (Shopify allows large ones); everything else is small."""
    return webhook_limit if path.startswith(WEBHOOK_PREFIX) else request_limit


def _megabytes(limit: int) -> str:
    return f"{limit / (1024 * 1024):g} MB"


def too_large_message(limit: int) -> str:
    return f"The request body exceeds {_megabytes(limit)}"


class BodySizeLimit:
    def __init__(self, app: ASGIApp, *, webhook_limit: int, request_limit: int) -> None:
        self.app = app
        self.webhook_limit = webhook_limit
        self.request_limit = request_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"], self.webhook_limit, self.request_limit)
        declared = _content_length(scope)
        if declared is None:
            await self.app(scope, _counting(receive, limit), send)
        elif declared == MALFORMED:
            await _refuse(send, 400, "invalid_content_length", "Content-Length is not a number")
        elif declared <= limit:
            await self.app(scope, receive, send)
        else:
            await _refuse(send, 413, "payload_too_large", too_large_message(limit))


MALFORMED = -1


def _content_length(scope: Scope) -> int | None:
    """The declared length; None when absent (chunked), MALFORMED when not ASCII digits."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else MALFORMED
    return None


def _counting(receive: Receive, limit: int) -> Receive:
    """Receive that stops the request (413 through the app's handler) past `limit` bytes."""
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(413, too_large_message(limit))
        return message

    return counted


async def _refuse(send: Send, status: int, code: str, message: str) -> None:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
