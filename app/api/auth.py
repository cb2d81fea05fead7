"""Bearer-key authentication for the headless API."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from app.api_keys.service import authenticate
from app.errors import Unauthorized
from app.models import Shop


async def api_shop(request: Request, session: AsyncSession) -> Shop:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "Send the API key as 'Authorization: Bearer <key>'", code="missing_api_key"
        )
    return await authenticate(session, token.strip())
