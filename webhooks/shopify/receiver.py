"""Shopify webhook receiver: verify on the raw bytes, find the shop, hand to the pipeline."""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.integrations.shopify.signing import is_valid_shop_domain, verify_webhook
from app.models import Platform
from app.state import State, get_state
from webhooks.batch import OrderBatcher
from webhooks.pipeline import MAX_BODY_BYTES, Delivery, ShopGate, process
from webhooks.shopify.handlers import COMPLIANCE_TOPICS, HANDLERS, LIFECYCLE_TOPICS, order_topic

SOURCE = "shopify"
# Topics that share a transaction with others of their kind when they arrive together.
BATCHED_TOPICS = frozenset(topic for topic, handler in HANDLERS.items() if handler is order_topic)


def _header(request: Request, name: str) -> str | None:
    """Classic `X-Shopify-*` headers, or the newer lowercase `shopify-*` event headers."""
    return request.headers.get(f"x-shopify-{name}") or request.headers.get(f"shopify-{name}")


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes | None:
    """The raw body, or None when it is larger than we accept (read no further)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _batcher(request: Request, state: State) -> OrderBatcher:
    """This process's batcher for the app's State (made on first use, on the serving loop)."""
    batcher: OrderBatcher | None = getattr(request.app.state, "order_batcher", None)
    if batcher is None or batcher.state is not state:
        batcher = OrderBatcher(state, HANDLERS, size=state.settings.WEBHOOK_BATCH_SIZE)
        request.app.state.order_batcher = batcher
    return batcher


def _json(status_code: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status_code)


async def receive(request: Request) -> Response:
    state = get_state(request)
    body = await read_body(request)
    if body is None:
        return _json(413, "payload_too_large", "Webhook body exceeds 5 MB")
    if not verify_webhook(state.settings.shopify_api_secret, body, _header(request, "hmac-sha256")):
        return _json(401, "invalid_signature", "HMAC signature does not match the body")
    topic = (_header(request, "topic") or "").strip()
    domain = (_header(request, "shop-domain") or "").strip().lower()
    if not topic or not is_valid_shop_domain(domain):
        return _json(400, "invalid_headers", "Missing topic or shop domain header")
    delivery_id = _header(request, "webhook-id") or (
        "sha256:" + hashlib.sha256(topic.encode() + b"\0" + body).hexdigest()
    )

    delivery = Delivery(
        source=SOURCE,
        topic=topic,
        delivery_id=delivery_id,
        body=body,
        headers=dict(request.headers),
        # A privacy request is kept as ids and a hash only, never with its email or phone.
        store_body=topic not in COMPLIANCE_TOPICS,
    )
    gate = ShopGate(
        platform=Platform.shopify,
        domain=domain,
        accepts_when_uninstalled=topic in COMPLIANCE_TOPICS or topic in LIFECYCLE_TOPICS,
        accepts_unknown_shop=topic in COMPLIANCE_TOPICS,
    )
    if topic in BATCHED_TOPICS and state.settings.WEBHOOK_BATCH_SIZE > 1:
        outcome = await _batcher(request, state).submit(gate, delivery)
    else:
        outcome = await process(state, gate, delivery, HANDLERS)
    if outcome.status_code >= 500:
        return _json(outcome.status_code, "temporarily_unavailable", outcome.detail)
    if outcome.status_code >= 400:
        return _json(outcome.status_code, outcome.result, outcome.detail)
    return JSONResponse({"result": outcome.result}, status_code=outcome.status_code)
