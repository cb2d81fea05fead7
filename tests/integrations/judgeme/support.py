"""Judge.me test helpers: a connected shop, review payloads, signed deliveries."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from app.db import unit_of_work
from app.integrations.judgeme import service
from app.models import LedgerEntry, Member, Shop
from app.program.config import ReviewRule, default_program
from app.program.service import save_program
from app.settings import Settings
from app.state import State
from tests.builders import DOMAIN, create_shop
from webhooks.judgeme.receiver import routes

TOKEN = "jm_private_token_0123456789"
URL = "/webhooks/judgeme"


async def connected_shop(
    session: AsyncSession, settings: Settings, state: State, **review: Any
) -> Shop:
    """An installed shop whose program rewards reviews, with Judge.me connected."""
    shop = await create_shop(session, settings)
    rule = ReviewRule(**({"enabled": True, "points": 50, "media_points": 25} | review))
    await save_program(
        session, shop, default_program("USD").model_copy(update={"review": rule}), "test"
    )
    await session.commit()
    async with unit_of_work(state.sessionmaker) as uow:
        await service.save_token(uow, state.cipher, shop, TOKEN)
    return shop


def review(
    review_id: int = 1001,
    *,
    published: bool = True,
    hidden: bool = False,
    pictures: bool = False,
    email: str = " Ada@Example.com ",
    product: str = "7001",
    verified: str = "buyer",
    text: str = "Lovely mug, keeps my tea hot for ages.",
    updated_at: str = "2026-05-01T10:00:00.000Z",
) -> dict[str, Any]:
    """A review object shaped like Judge.me's webhook and API payloads."""
    return {
        "id": review_id,
        "title": "Great",
        "body": text,
        "rating": 5,
        "product_external_id": product,
        "product_title": "Mug",
        "product_handle": "mug",
        "reviewer": {"id": 77, "external_id": 5550001, "email": email, "name": "Ada"},
        "source": "web",
        "curated": "ok",
        "published": published,
        "hidden": hidden,
        "verified": verified,
        "featured": False,
        "has_published_pictures": pictures,
        "has_published_videos": False,
        "pictures": [{"hidden": False, "urls": {"small": "https://x/s.jpg"}}] if pictures else [],
        "created_at": "2026-05-01T09:00:00.000Z",
        "updated_at": updated_at,
        "ip_address": "203.0.113.5",
    }


def delivery(
    item: dict[str, Any], event: str = "review/created", *, secret: str = TOKEN, shop: str = DOMAIN
) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(
        {"review": item, "event": event, "shop_domain": shop, "platform": "shopify"}
    )
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "JUDGEME-HMAC-SHA256": digest}


async def receiver_client(state: State) -> AsyncIterator[httpx.AsyncClient]:
    """The receiver on its own app (the lead mounts `routes` beside Shopify's)."""
    application = Starlette(routes=routes)

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = dict(scope, state={"stamp": state})
        await application(scope, receive, send)

    transport = httpx.ASGITransport(app=asgi)
    async with httpx.AsyncClient(transport=transport, base_url="https://stamp.test") as http:
        yield http


async def entries(session: AsyncSession) -> list[tuple[str, int, str]]:
    await session.rollback()
    result = await session.execute(select(LedgerEntry).order_by(LedgerEntry.id))
    return [(e.kind, e.points, e.idempotency_key) for e in result.scalars()]


async def balance(session: AsyncSession, email: str = "ada@example.com") -> int:
    await session.rollback()
    query = select(Member).where(Member.email == email).execution_options(populate_existing=True)
    member = (await session.execute(query)).scalar_one()
    return member.points_balance
