"""SQL for the figures an operator scrapes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import DeadLetter, IntegrationConnection
from app.models.integration import ConnectionStatus, IntegrationKind


class ObservabilityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def open_dead_letters(self) -> tuple[int, datetime | None]:
        """How many dead letters wait for a replay, and when the oldest was written."""
        row = (
            await self.session.execute(
                select(func.count(), func.min(DeadLetter.created_at)).where(
                    DeadLetter.resolved_at.is_(None)
                )
            )
        ).one()
        return int(row[0] or 0), row[1]

    async def klaviyo_cursors(self) -> list[tuple[int, int]]:
        """(shop id, event cursor) of every connected Klaviyo integration."""
        result = await self.session.execute(
            select(IntegrationConnection.shop_id, IntegrationConnection.event_cursor).where(
                IntegrationConnection.kind == IntegrationKind.klaviyo,
                IntegrationConnection.status == ConnectionStatus.connected,
            )
        )
        return [(int(shop_id), int(cursor)) for shop_id, cursor in result.all()]
