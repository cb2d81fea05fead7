"""Judge.me webhook receiver: find the shop, verify the signature, hand to the pipeline.

Judge.me names the shop only inside the body (`shop_domain`), so the body is parsed to
find whose token signs it; nothing is written before the signature checks out. The
signature is `JUDGEME-HMAC-SHA256`: HMAC-SHA256 of the raw body with the shop's private
API token, hex (base64 tolerated), compared in constant time. Judge.me sends no delivery
id, so a delivery is the review id, topic and `updated_at` (or a hash of the body).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.integrations.judgeme.repository import JudgemeRepository
from app.models import Shop
from app.state import State, get_state
from webhooks.judgeme.handlers import HANDLERS
from webhooks.pipeline import Delivery, ShopGate, is_transient, process
from webhooks.shopify.receiver import read_body

SOURCE = "judgeme"
SIGNATURE_HEADERS = ("judgeme-hmac-sha256", "x-judgeme-hmac-sha256", "http_x_judgeme_hmac_sha256")


def verify(body: bytes, secret: str, header: str | None) -> bool:
    if not header:
        return False
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    given = header.strip()
    return hmac.compare_digest(digest.hex(), given.lower()) or hmac.compare_digest(
        base64.b64encode(digest).decode(), given
    )


def _json(status_code: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status_code)


def _delivery_id(topic: str, payload: Mapping[str, Any], body: bytes) -> str:
    review = payload.get("review")
    if isinstance(review, Mapping) and review.get("id") is not None and review.get("updated_at"):
        return f"{topic}:{review['id']}:{review['updated_at']}"[:255]
    return "sha256:" + hashlib.sha256(body).hexdigest()


async def _shop_and_token(state: State, domain: str) -> tuple[Shop, str] | None:
    async with state.sessionmaker() as session:
        found = await JudgemeRepository(session).connected_shop(domain)
    if found is None:
        return None
    shop, secret = found
    return shop, state.cipher.decrypt(secret)


async def receive(request: Request) -> Response:
    state = get_state(request)
    body = await read_body(request)
    if body is None:
        return _json(413, "payload_too_large", "Webhook body exceeds 5 MB")
    header = next(
        (request.headers[name] for name in SIGNATURE_HEADERS if name in request.headers), None
    )
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    domain = payload.get("shop_domain") if isinstance(payload, dict) else None
    try:
        found = (
            await _shop_and_token(state, domain.strip().lower())
            if isinstance(domain, str) and header
            else None
        )
    except Exception as exc:
        if is_transient(exc):
            return _json(503, "temporarily_unavailable", "temporarily unavailable; please retry")
        raise
    if found is None or not verify(body, found[1], header):
        return _json(401, "invalid_signature", "HMAC signature does not match the body")
    assert isinstance(payload, dict)
    shop = found[0]
    topic = str(payload.get("event") or "").strip()
    delivery = Delivery(
        source=SOURCE,
        topic=topic,
        delivery_id=_delivery_id(topic, payload, body),
        body=body,
        headers=dict(request.headers),
    )
    outcome = await process(
        state, ShopGate(platform=shop.platform, domain=shop.domain), delivery, HANDLERS
    )
    if outcome.status_code >= 500:
        return _json(outcome.status_code, "temporarily_unavailable", outcome.detail)
    if outcome.status_code >= 400:
        return _json(outcome.status_code, outcome.result, outcome.detail)
    return JSONResponse({"result": outcome.result}, status_code=outcome.status_code)


routes = [Route("/webhooks/judgeme", receive, methods=["POST"])]
