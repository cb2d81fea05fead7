"""WooCommerce webhook receiver: `POST /webhooks/woocommerce/{shop_id}`.

The shop id in the path picks the per-shop secret; `X-WC-Webhook-Signature` must be the
base64 HMAC-SHA256 of the raw body under it, else 401 and nothing is written. The ping
WooCommerce sends when a webhook is created (`webhook_id=<id>`, form-encoded, unsigned)
is answered 200 before any lookup: it must succeed even while the connect callback that
created the webhook still holds the database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.api.pagination import ROW_ID
from app.models import Platform, Shop
from app.state import State, get_state
from webhooks.pipeline import Delivery, ShopGate, process
from webhooks.shopify.receiver import read_body
from webhooks.woocommerce.handlers import HANDLERS

SOURCE = "woocommerce"
PING_BODY = re.compile(rb"webhook_id=\d{1,20}")


def signature(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify(secret: str, body: bytes, header_value: str | None) -> bool:
    if not header_value or not body:
        return False
    return hmac.compare_digest(signature(secret, body), header_value.strip())


def is_ping(request: Request, body: bytes) -> bool:
    return (
        request.headers.get("x-wc-webhook-signature") is None
        and PING_BODY.fullmatch(body.strip()) is not None
    )


def _json(status_code: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status_code)


async def _shop_and_secret(state: State, shop_id: int) -> tuple[Shop, str] | None:
    async with state.sessionmaker() as session:
        shop = await session.get(Shop, shop_id)
        if shop is None or shop.platform != Platform.woocommerce or not shop.webhook_secret_enc:
            return None
        return shop, state.cipher.decrypt(shop.webhook_secret_enc)


async def receive(request: Request) -> Response:
    state = get_state(request)
    body = await read_body(request)
    if body is None:
        return _json(413, "payload_too_large", "Webhook body exceeds 5 MB")
    if is_ping(request, body):
        return JSONResponse({"result": "ping"})
    raw_id = request.path_params.get("shop_id", "")
    found = await _shop_and_secret(state, int(raw_id)) if ROW_ID.fullmatch(raw_id) else None
    # An unknown shop answers like a bad signature: nothing to learn by probing ids.
    if found is None or not verify(found[1], body, request.headers.get("x-wc-webhook-signature")):
        return _json(401, "invalid_signature", "HMAC signature does not match the body")
    shop, _secret = found
    topic = (request.headers.get("x-wc-webhook-topic") or "").strip()
    if not topic:
        return _json(400, "invalid_headers", "Missing X-WC-Webhook-Topic")
    delivery_id = request.headers.get("x-wc-webhook-delivery-id") or (
        "sha256:" + hashlib.sha256(topic.encode() + b"\0" + body).hexdigest()
    )
    delivery = Delivery(
        source=SOURCE,
        topic=topic,
        delivery_id=delivery_id,
        body=body,
        headers=dict(request.headers),
    )
    outcome = await process(
        state, ShopGate(platform=Platform.woocommerce, domain=shop.domain), delivery, HANDLERS
    )
    if outcome.status_code >= 500:
        return _json(outcome.status_code, "temporarily_unavailable", outcome.detail)
    if outcome.status_code >= 400:
        return _json(outcome.status_code, outcome.result, outcome.detail)
    return JSONResponse({"result": outcome.result}, status_code=outcome.status_code)
