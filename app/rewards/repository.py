"""SQL for redemptions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Redemption


class RedemptionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_request_key(self, shop_id: int, key: str) -> Redemption | None:
        result = await self.session.execute(
            select(Redemption).where(Redemption.shop_id == shop_id, Redemption.request_key == key)
        )
        return result.scalar_one_or_none()

    async def add(self, redemption: Redemption) -> Redemption:
        self.session.add(redemption)
        await self.session.flush()
        return redemption

    async def move(self, redemption_id: int, old: str, new: str, **values: object) -> bool:
        """Change status only from `old`, so two finishers cannot both act on one redemption."""
        result = await self.session.execute(
            update(Redemption)
            .where(Redemption.id == redemption_id, Redemption.status == old)
            .values(status=new, **values)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def mark_used(
        self, shop_id: int, codes: Sequence[str], order_id: str, at: datetime
    ) -> int:
        result = await self.session.execute(
            update(Redemption)
            .where(
                Redemption.shop_id == shop_id,
                func.upper(Redemption.code).in_([code.upper() for code in codes]),
                Redemption.status.in_(("issued", "expired")),
            )
            .values(status="used", used_order_id=order_id, used_at=at)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def expired_unused(self, shop_id: int, now: datetime, limit: int) -> list[Redemption]:
        result = await self.session.execute(
            select(Redemption)
            .where(
                Redemption.shop_id == shop_id,
                Redemption.status == "issued",
                Redemption.expires_at.is_not(None),
                Redemption.expires_at < now,
            )
            .order_by(Redemption.id)
            .limit(limit)
        )
        return list(result.scalars())

    async def stale_pending(self, shop_id: int, before: datetime) -> list[Redemption]:
        result = await self.session.execute(
            select(Redemption)
            .where(
                Redemption.shop_id == shop_id,
                Redemption.status == "pending",
                Redemption.created_at < before,
            )
            .order_by(Redemption.id)
        )
        return list(result.scalars())

    async def for_member(self, member_id: int) -> list[Redemption]:
        result = await self.session.execute(
            select(Redemption).where(Redemption.member_id == member_id).order_by(Redemption.id)
        )
        return list(result.scalars())
