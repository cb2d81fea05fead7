from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ApiKey, Shop
from app.models.base import utcnow


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, key: ApiKey) -> ApiKey:
        self.session.add(key)
        await self.session.flush()
        return key

    async def active_by_hash(self, key_hash: str) -> tuple[ApiKey, Shop] | None:
        result = await self.session.execute(
            select(ApiKey, Shop)
            .join(Shop, Shop.id == ApiKey.shop_id)
            .where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
        )
        row = result.one_or_none()
        return (row[0], row[1]) if row else None

    async def list_for_shop(self, shop_id: int) -> list[ApiKey]:
        result = await self.session.execute(
            select(ApiKey).where(ApiKey.shop_id == shop_id).order_by(ApiKey.id)
        )
        return list(result.scalars())

    async def revoke(self, shop_id: int, key_id: int) -> bool:
        result = await self.session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.shop_id == shop_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]
