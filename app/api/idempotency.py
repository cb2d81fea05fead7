"""Idempotency keys for POST endpoints: a repeat with the same body gets the first response.

A repeat with a different body is refused with 409 `idempotency_key_reused`, so a client
bug that reuses keys cannot silently drop a request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select
from starlette.responses import JSONResponse

from app.api.edge import ApiContext
from app.db import insert_if_absent
from app.errors import Conflict
from app.models import IdempotentRequest
from app.models.base import utcnow


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


async def _stored(ctx: ApiContext, endpoint: str, key: str) -> IdempotentRequest | None:
    result = await ctx.session.execute(
        select(IdempotentRequest).where(
            IdempotentRequest.shop_id == ctx.shop.id,
            IdempotentRequest.endpoint == endpoint,
            IdempotentRequest.key == key,
        )
    )
    return result.scalar_one_or_none()


def _replay(ctx: ApiContext, stored: IdempotentRequest) -> JSONResponse:
    if stored.request_sha256 != ctx.body_sha256():
        raise IdempotencyKeyReused("This idempotency_key was used with a different request body")
    return JSONResponse(stored.response, status_code=stored.status_code)


async def run_once(
    ctx: ApiContext,
    endpoint: str,
    key: str,
    action: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
) -> JSONResponse:
    """Run `action` once per (shop, endpoint, key) and remember its response."""
    stored = await _stored(ctx, endpoint, key)
    if stored is not None:
        return _replay(ctx, stored)
    status_code, body = await action()
    inserted = await insert_if_absent(
        ctx.session,
        IdempotentRequest,
        shop_id=ctx.shop.id,
        endpoint=endpoint,
        key=key,
        request_sha256=ctx.body_sha256(),
        status_code=status_code,
        response=body,
        created_at=utcnow(),
    )
    if inserted is None:  # a concurrent request with this key committed first
        stored = await _stored(ctx, endpoint, key)
        assert stored is not None
        return _replay(ctx, stored)
    return JSONResponse(body, status_code=status_code)
