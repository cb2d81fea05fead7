"""SQL for members."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import insert_if_absent
from app.models import Member
from app.models.base import utcnow


class MemberRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_customer_id(self, shop_id: int, customer_id: str) -> Member | None:
        result = await self.session.execute(
            select(Member).where(Member.shop_id == shop_id, Member.customer_id == customer_id)
        )
        return result.scalar_one_or_none()

    async def by_email(self, shop_id: int, email: str) -> list[Member]:
        result = await self.session.execute(
            select(Member)
            .where(Member.shop_id == shop_id, Member.email == email.strip().lower())
            .order_by(Member.id)
        )
        return list(result.scalars())


class MemberWriter:
    """Creating and claiming members; races resolve through the unique indexes."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_if_absent(self, **values: Any) -> Member | None:
        values.setdefault("created_at", utcnow())
        return await insert_if_absent(self.session, Member, **values)

    async def guest_by_email(self, shop_id: int, email: str) -> Member | None:
        result = await self.session.execute(
            select(Member).where(
                Member.shop_id == shop_id, Member.email == email, Member.customer_id.is_(None)
            )
        )
        return result.scalar_one_or_none()
