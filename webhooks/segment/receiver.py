"""Segment Webhooks destination receiver: `POST /webhooks/segment/{shop_id}`.

The shop's shared secret signs each request: `X-Signature` is the hex HMAC-SHA1 of the
raw body. Nothing is written before it checks out (401 otherwise). The delivery id is
Segment's `messageId` (a hash of the body when absent), so a retried message is a no-op.
"""

from __future__ import annotations

import hashlib
import hmac

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.integrations.connections import ConnectorRepository
from app.models import ConnectionStatus, ConnectorKind, Shop
from app.state import State, get_state
from webhooks.pipeline import Delivery, ShopGate, is_transient, process
from webhooks.segment.handlers import HANDLERS
from webhooks.shopify.receiver import read_body

SOURCE = "segment"


def signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    return bool(header) and hmac.compare_digest(signature(secret, body), (header or "").strip())


def _json(status_code: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status_code)


async def _shop_and_secret(state: State, shop_id: int) -> tuple[Shop, str] | None:
    async with state.sessionmaker() as session:
        connection = await ConnectorRepository(session, ConnectorKind.segment).connection(shop_id)
        if (
            connection is None
            or connection.status != ConnectionStatus.connected
            or connection.inbound_secret_enc is None
        ):
            return None
        shop = await session.get(Shop, shop_id)
        if shop is None:
            return None
        return shop, state.cipher.decrypt(connection.inbound_secret_enc)


async def receive(request: Request) -> Response:
    state = get_state(request)
    raw_id = str(request.path_params["shop_id"])
    body = await read_body(request)
    if body is None:
        return _json(413, "payload_too_large", "Webhook body exceeds 5 MB")
    try:
        valid = raw_id.isascii() and raw_id.isdigit() and len(raw_id) <= 18
        found = await _shop_and_secret(state, int(raw_id)) if valid else None
    except Exception as exc:
        if is_transient(exc):
            return _json(503, "temporarily_unavailable", "temporarily unavailable; please retry")
        raise
    if found is None or not verify(found[1], body, request.headers.get("x-signature")):
        return _json(401, "invalid_signature", "X-Signature does not match the body")
    shop = found[0]
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    message_id = payload.get("messageId") if isinstance(payload, dict) else None
    topic = str(payload.get("type") or "") if isinstance(payload, dict) else ""
    delivery = Delivery(
        source=SOURCE,
        topic=topic,
        delivery_id=str(message_id)[:255]
        if message_id
        else "sha256:" + hashlib.sha256(body).hexdigest(),
        body=body,
        headers={},
        store_body=False,
    )
    outcome = await process(
        state, ShopGate(platform=shop.platform, domain=shop.domain), delivery, HANDLERS
    )
    if outcome.status_code >= 500:
        return _json(outcome.status_code, "temporarily_unavailable", outcome.detail)
    if outcome.status_code >= 400:
        return _json(outcome.status_code, outcome.result, outcome.detail)
    return JSONResponse({"result": outcome.result}, status_code=outcome.status_code)


routes = [Route("/webhooks/segment/{shop_id}", receive, methods=["POST"])]
