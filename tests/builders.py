"""Plain async builders for test data (no factory library)."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.crypto import Cipher
from app.integrations.shopify.signing import webhook_hmac
from app.models import Base, Member, Shop, ShopStatus
from app.models.base import utcnow
from app.program.service import current_config, save_program
from app.settings import Settings

DOMAIN = "some-shop.myshopify.com"


async def create_shop(
    session: AsyncSession,
    settings: Settings,
    *,
    domain: str = DOMAIN,
    status: str = ShopStatus.installed,
    currency: str = "USD",
    access_token: str = "shpat_test_token_0123456789",
) -> Shop:
    cipher = Cipher.from_settings(settings)
    shop = Shop(
        domain=domain,
        name="Some Shop",
        email="owner@some-shop.example",
        currency=currency,
        status=status,
        access_token_enc=cipher.encrypt(access_token),
        installed_at=utcnow(),
    )
    session.add(shop)
    await session.commit()
    return shop


async def create_member(session: AsyncSession, shop: Shop, **values: Any) -> Member:
    member = Member(shop_id=shop.id, **values)
    session.add(member)
    await session.commit()
    return member


def shopify_webhook(
    settings: Settings,
    topic: str,
    payload: Any,
    *,
    shop: str = DOMAIN,
    webhook_id: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """A body and headers signed exactly as Shopify signs them."""
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Hmac-Sha256": webhook_hmac(settings.shopify_api_secret, body),
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Shopify-Event-Id": str(uuid.uuid4()),
        "X-Shopify-API-Version": settings.SHOPIFY_API_VERSION,
        "X-Shopify-Triggered-At": utcnow().isoformat(),
    }
    return body, headers


async def hold_points(session: AsyncSession, shop: Shop, days: int = 14) -> None:
    """Change the shop's program to keep new points pending for `days` days, committed."""
    config = await current_config(session, shop)
    await save_program(session, shop, config.model_copy(update={"pending_days": days}), "test")
    await session.commit()


async def row_counts(session: AsyncSession) -> dict[str, int]:
    """How many rows each table holds: the 'nothing changed' check on refusal paths."""
    await session.rollback()  # a fresh snapshot: see what other sessions committed
    counts: dict[str, int] = {}
    for table in Base.metadata.sorted_tables:
        counts[table.name] = int(await session.scalar(select(func.count()).select_from(table)) or 0)
    return counts


async def all_stored_text(session: AsyncSession) -> str:
    """Every value in every table as one lower-cased string, to search for personal data."""
    await session.rollback()  # a fresh snapshot: see what other sessions committed
    parts: list[str] = []
    for table in Base.metadata.sorted_tables:
        result = await session.execute(text(f"SELECT * FROM {table.name}"))
        for row in result:
            for value in row:
                if isinstance(value, bytes | memoryview):
                    parts.append(bytes(value).decode("utf-8", "replace"))
                elif value is not None:
                    parts.append(orjson.dumps(value, default=str).decode())
    return "\n".join(parts).lower()


async def api_key_for(session: AsyncSession, shop: Shop) -> dict[str, str]:
    """Authorization headers with a fresh API key for `shop`."""
    from app.api_keys.service import create_key

    created = await create_key(session, shop, "tests")
    await session.commit()
    return {"Authorization": f"Bearer {created.plaintext}"}
