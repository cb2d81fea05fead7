"""SQL for privacy requests: find what a person left behind, and erase it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    ComplianceRequest,
    DataExport,
    DeadLetter,
    LedgerEntry,
    Member,
    Order,
    Shop,
    WebhookDelivery,
)
from app.models.base import utcnow


class PrivacyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def members_for(
        self, shop_id: int, customer_id: str | None, email: str | None
    ) -> list[Member]:
        conditions = []
        if customer_id:
            conditions.append(Member.customer_id == customer_id)
        if email:
            conditions.append(Member.email == email.strip().lower())
        if not conditions:
            return []
        result = await self.session.execute(
            select(Member).where(Member.shop_id == shop_id, or_(*conditions)).order_by(Member.id)
        )
        return list(result.scalars())

    async def ledger_for(self, member_id: int) -> list[LedgerEntry]:
        result = await self.session.execute(
            select(LedgerEntry).where(LedgerEntry.member_id == member_id).order_by(LedgerEntry.id)
        )
        return list(result.scalars())

    async def orders_for(self, member_id: int) -> list[Order]:
        result = await self.session.execute(
            select(Order).where(Order.member_id == member_id).order_by(Order.id)
        )
        return list(result.scalars())

    async def anonymise_members(self, member_ids: list[int]) -> None:
        if not member_ids:
            return
        await self.session.execute(
            update(Member)
            .where(Member.id.in_(member_ids))
            .values(
                email=None,
                first_name=None,
                last_name=None,
                phone=None,
                birthday=None,
                redacted_at=utcnow(),
            )
        )

    async def anonymise_all_members(self, shop_id: int) -> None:
        await self.session.execute(
            update(Member)
            .where(Member.shop_id == shop_id)
            .values(
                email=None,
                first_name=None,
                last_name=None,
                phone=None,
                birthday=None,
                redacted_at=utcnow(),
            )
        )

    async def stored_bodies(self, shop_id: int) -> AsyncIterator[tuple[str, int, bytes]]:
        """Every stored payload of the shop: ("delivery" | "dead_letter", id, body)."""
        deliveries = await self.session.stream(
            select(WebhookDelivery.id, WebhookDelivery.body).where(
                WebhookDelivery.shop_id == shop_id, WebhookDelivery.body.is_not(None)
            )
        )
        async for row in deliveries:
            yield "delivery", row.id, row.body
        letters = await self.session.stream(
            select(DeadLetter.id, DeadLetter.body).where(DeadLetter.shop_id == shop_id)
        )
        async for row in letters:
            yield "dead_letter", row.id, row.body

    async def replace_body(self, kind: str, row_id: int, body: bytes) -> None:
        model: Any = WebhookDelivery if kind == "delivery" else DeadLetter
        await self.session.execute(update(model).where(model.id == row_id).values(body=body))

    async def delete_exports(self, shop_id: int, customer_id: str | None) -> None:
        query = delete(DataExport).where(DataExport.shop_id == shop_id)
        if customer_id is not None:
            query = query.where(DataExport.customer_id == customer_id)
        await self.session.execute(query)

    async def record_request(self, request: ComplianceRequest) -> None:
        self.session.add(request)
        await self.session.flush()

    async def add_export(self, export: DataExport) -> DataExport:
        self.session.add(export)
        await self.session.flush()
        return export

    async def erase_shop_profile(self, shop: Shop) -> None:
        shop.name = None
        shop.email = None
        shop.access_token_enc = None
        shop.refresh_token_enc = None
        shop.webhook_secret_enc = None
        shop.access_token_expires_at = None
        shop.refresh_token_expires_at = None
        await self.session.flush()
