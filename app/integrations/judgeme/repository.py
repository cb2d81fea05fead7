"""SQL for the Judge.me connection and the reviews that earned points."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import insert_if_absent
from app.integrations.judgeme.reviews import SOURCE
from app.models import Member, Shop, ShopStatus
from app.models.base import utcnow
from app.models.integration import (
    ConnectionStatus,
    IntegrationConnection,
    IntegrationKind,
    ReviewReward,
)

KIND = IntegrationKind.judgeme
REWARDED = "rewarded"
REVERSED = "reversed"


class JudgemeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def connection(self, shop_id: int) -> IntegrationConnection | None:
        result = await self.session.execute(
            select(IntegrationConnection).where(
                IntegrationConnection.shop_id == shop_id, IntegrationConnection.kind == KIND
            )
        )
        return result.scalar_one_or_none()

    async def save_connection(self, shop_id: int, secret_enc: bytes) -> IntegrationConnection:
        now = utcnow()
        connection = await self.connection(shop_id)
        if connection is None:
            connection = IntegrationConnection(shop_id=shop_id, kind=KIND, event_cursor=0)
            self.session.add(connection)
        connection.secret_enc = secret_enc
        connection.status = ConnectionStatus.connected
        connection.connected_at = now
        connection.last_error = None
        connection.last_error_at = None
        connection.updated_at = now
        await self.session.flush()
        return connection

    async def connected_shop(self, domain: str) -> tuple[Shop, bytes] | None:
        """The installed shop with this domain and its encrypted token, if Judge.me is on."""
        result = await self.session.execute(
            select(Shop, IntegrationConnection.secret_enc)
            .join(IntegrationConnection, IntegrationConnection.shop_id == Shop.id)
            .where(
                Shop.domain == domain,
                Shop.status == ShopStatus.installed,
                IntegrationConnection.kind == KIND,
                IntegrationConnection.status == ConnectionStatus.connected,
                IntegrationConnection.secret_enc.is_not(None),
            )
        )
        for shop, secret in result.all():
            if secret is not None:
                return shop, secret
        return None

    async def connected_shop_ids(self) -> list[int]:
        result = await self.session.execute(
            select(IntegrationConnection.shop_id)
            .join(Shop, Shop.id == IntegrationConnection.shop_id)
            .where(
                IntegrationConnection.kind == KIND,
                IntegrationConnection.status == ConnectionStatus.connected,
                Shop.status == ShopStatus.installed,
            )
            .order_by(IntegrationConnection.shop_id)
        )
        return list(result.scalars())

    async def reward(self, shop_id: int, review_id: str) -> ReviewReward | None:
        result = await self.session.execute(
            select(ReviewReward)
            .where(
                ReviewReward.shop_id == shop_id,
                ReviewReward.source == SOURCE,
                ReviewReward.review_id == review_id,
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def add_reward(
        self, shop_id: int, review_id: str, member_id: int, product_id: str | None, points: int
    ) -> ReviewReward | None:
        """The new reward row, or None when a concurrent delivery recorded it first."""
        now = utcnow()
        return await insert_if_absent(
            self.session,
            ReviewReward,
            shop_id=shop_id,
            source=SOURCE,
            review_id=review_id,
            member_id=member_id,
            product_id=product_id,
            points=points,
            media_points=0,
            status=REWARDED,
            created_at=now,
        )

    async def product_rewarded(
        self, shop_id: int, member_id: int, product_id: str, review_id: str
    ) -> bool:
        """Whether another review of this product already earned this member points."""
        found = await self.session.scalar(
            select(ReviewReward.id)
            .where(
                ReviewReward.shop_id == shop_id,
                ReviewReward.member_id == member_id,
                ReviewReward.product_id == product_id,
                ReviewReward.review_id != review_id,
                ReviewReward.status == REWARDED,
            )
            .limit(1)
        )
        return found is not None

    async def lock_member(self, member_id: int) -> None:
        """Serialise one member's review rewards (PostgreSQL; SQLite serialises writers)."""
        await self.session.execute(
            select(Member.id).where(Member.id == member_id).with_for_update()
        )

    async def due_for_check(
        self, shop_id: int, checked_before: datetime, limit: int
    ) -> list[ReviewReward]:
        """Rewarded reviews not checked since `checked_before`, least recently checked first."""
        result = await self.session.execute(
            select(ReviewReward)
            .where(
                ReviewReward.shop_id == shop_id,
                ReviewReward.status == REWARDED,
                or_(ReviewReward.checked_at.is_(None), ReviewReward.checked_at < checked_before),
            )
            .order_by(ReviewReward.checked_at.nulls_first(), ReviewReward.id)
            .limit(limit)
        )
        return list(result.scalars())
