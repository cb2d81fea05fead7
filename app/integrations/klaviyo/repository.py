"""SQL for the Klaviyo connection, the profile backlog and the event outbox cursor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import dialect_insert
from app.models import Member, MemberEvent, Shop, ShopStatus, WinbackState
from app.models.base import UTCDateTime, utcnow
from app.models.integration import (
    ConnectionStatus,
    EventSync,
    IntegrationConnection,
    IntegrationKind,
    MemberSync,
)

KIND = IntegrationKind.klaviyo


def change_mark() -> Any:
    """When the member last changed as far as Klaviyo cares (created, if never since)."""
    return func.coalesce(Member.sync_dirty_at, Member.created_at, type_=UTCDateTime())


@dataclass(frozen=True, slots=True)
class BacklogRow:
    member: Member
    mark: datetime
    synced_hash: str | None
    winback_status: str | None = None
    winback_score: float | None = None


@dataclass(frozen=True, slots=True)
class SyncMark:
    member_id: int
    mark: datetime
    hash: str


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    name: str
    unique_id: str
    properties: dict[str, Any]
    occurred_at: datetime
    email: str | None


class KlaviyoRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _insert(self) -> Any:
        return dialect_insert(self.session)

    # --- the connection -------------------------------------------------------------------

    async def connection(self, shop_id: int) -> IntegrationConnection | None:
        result = await self.session.execute(
            select(IntegrationConnection)
            .where(IntegrationConnection.shop_id == shop_id, IntegrationConnection.kind == KIND)
            .execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def add_connection(self, shop_id: int, secret_enc: bytes) -> IntegrationConnection:
        connection = IntegrationConnection(
            shop_id=shop_id,
            kind=KIND,
            status=ConnectionStatus.connected,
            secret_enc=secret_enc,
            event_cursor=0,
            connected_at=utcnow(),
            updated_at=utcnow(),
        )
        self.session.add(connection)
        await self.session.flush()
        return connection

    async def acquire_lease(self, shop_id: int, now: datetime, until: datetime) -> bool:
        """Take the shop's sync for this run, unless a live run holds it."""
        result = await self.session.execute(
            update(IntegrationConnection)
            .where(
                IntegrationConnection.shop_id == shop_id,
                IntegrationConnection.kind == KIND,
                IntegrationConnection.status == ConnectionStatus.connected,
                or_(
                    IntegrationConnection.lease_until.is_(None),
                    IntegrationConnection.lease_until < now,
                ),
            )
            .values(lease_until=until)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def renew_lease(self, shop_id: int, held: datetime, until: datetime) -> bool:
        result = await self.session.execute(
            update(IntegrationConnection)
            .where(
                IntegrationConnection.shop_id == shop_id,
                IntegrationConnection.kind == KIND,
                IntegrationConnection.lease_until == held,
            )
            .values(lease_until=until)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def release_lease(self, shop_id: int, held: datetime) -> None:
        await self.session.execute(
            update(IntegrationConnection)
            .where(
                IntegrationConnection.shop_id == shop_id,
                IntegrationConnection.kind == KIND,
                IntegrationConnection.lease_until == held,
            )
            .values(lease_until=None)
        )

    async def record(self, shop_id: int, **values: Any) -> None:
        await self.session.execute(
            update(IntegrationConnection)
            .where(IntegrationConnection.shop_id == shop_id, IntegrationConnection.kind == KIND)
            .values(updated_at=utcnow(), **values)
        )

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

    # --- profiles -------------------------------------------------------------------------

    def _backlog_condition(self, shop_id: int) -> Any:
        return and_(
            Member.shop_id == shop_id,
            or_(MemberSync.member_id.is_(None), MemberSync.synced_mark != change_mark()),
        )

    async def backlog_count(self, shop_id: int) -> int:
        query = (
            select(func.count())
            .select_from(Member)
            .outerjoin(MemberSync, MemberSync.member_id == Member.id)
            .where(self._backlog_condition(shop_id))
        )
        return int(await self.session.scalar(query) or 0)

    async def backlog_page(self, shop_id: int, after: int, limit: int) -> list[BacklogRow]:
        """Members whose profile Klaviyo has not seen in its current state, by id."""
        result = await self.session.execute(
            select(
                Member,
                change_mark(),
                MemberSync.synced_hash,
                WinbackState.status,
                WinbackState.score,
            )
            .outerjoin(MemberSync, MemberSync.member_id == Member.id)
            .outerjoin(WinbackState, WinbackState.member_id == Member.id)
            .where(self._backlog_condition(shop_id), Member.id > after)
            .order_by(Member.id)
            .limit(limit)
        )
        return [BacklogRow(*row) for row in result.all()]

    async def mark_synced(self, shop_id: int, marks: Sequence[SyncMark]) -> None:
        """Store the mark each profile was sent at; the last writer wins, so a stale
        concurrent run leaves a mismatch behind and the member is simply sent again."""
        if not marks:
            return
        now = utcnow()
        rows = [
            {
                "member_id": mark.member_id,
                "shop_id": shop_id,
                "synced_mark": mark.mark,
                "synced_hash": mark.hash,
                "synced_at": now,
            }
            for mark in marks
        ]
        statement = self._insert()(MemberSync)
        statement = statement.on_conflict_do_update(
            index_elements=[MemberSync.member_id],
            set_={
                "synced_mark": statement.excluded.synced_mark,
                "synced_hash": statement.excluded.synced_hash,
                "synced_at": statement.excluded.synced_at,
            },
        )
        for start in range(0, len(rows), 5000):
            await self.session.execute(statement, rows[start : start + 5000])

    async def forget_profiles(self, shop_id: int) -> None:
        """After a disconnect the next account may be another one: send everything again."""
        await self.session.execute(delete(MemberSync).where(MemberSync.shop_id == shop_id))
        await self.session.execute(delete(EventSync).where(EventSync.shop_id == shop_id))

    # --- events ---------------------------------------------------------------------------

    def _unsent(self, shop_id: int, cursor: int) -> Any:
        return and_(
            MemberEvent.shop_id == shop_id,
            MemberEvent.id > cursor,
            ~exists().where(EventSync.event_id == MemberEvent.id),
        )

    async def unsent_events(self, shop_id: int, cursor: int, limit: int) -> list[EventRow]:
        result = await self.session.execute(
            select(
                MemberEvent.id,
                MemberEvent.name,
                MemberEvent.unique_id,
                MemberEvent.properties,
                MemberEvent.occurred_at,
                Member.email,
                Member.redacted_at,
            )
            .join(Member, Member.id == MemberEvent.member_id)
            .where(self._unsent(shop_id, cursor))
            .order_by(MemberEvent.id)
            .limit(limit)
        )
        return [
            EventRow(
                id=row.id,
                name=row.name,
                unique_id=row.unique_id,
                properties=dict(row.properties or {}),
                occurred_at=row.occurred_at,
                email=None if row.redacted_at is not None else row.email,
            )
            for row in result
        ]

    async def unsent_event_count(self, shop_id: int, cursor: int) -> int:
        query = select(func.count()).select_from(MemberEvent).where(self._unsent(shop_id, cursor))
        return int(await self.session.scalar(query) or 0)

    async def mark_events_sent(self, shop_id: int, event_ids: Sequence[int]) -> None:
        if not event_ids:
            return
        now = utcnow()
        statement = self._insert()(EventSync).on_conflict_do_nothing()
        await self.session.execute(
            statement, [{"event_id": i, "shop_id": shop_id, "sent_at": now} for i in event_ids]
        )

    async def max_event_id(self, shop_id: int) -> int:
        query = select(func.max(MemberEvent.id)).where(MemberEvent.shop_id == shop_id)
        return int(await self.session.scalar(query) or 0)

    async def advance_cursor(self, shop_id: int, cursor: int, settled_before: datetime) -> int:
        """Move the cursor over sent events old enough that no slower transaction can still
        commit an event below them; their marks are then dropped. Returns the new cursor."""
        first_unsent = await self.session.scalar(
            select(func.min(MemberEvent.id)).where(self._unsent(shop_id, cursor))
        )
        conditions = [
            MemberEvent.shop_id == shop_id,
            MemberEvent.id > cursor,
            MemberEvent.created_at < settled_before,
        ]
        if first_unsent is not None:
            conditions.append(MemberEvent.id < first_unsent)
        settled = await self.session.scalar(select(func.max(MemberEvent.id)).where(*conditions))
        if settled is None:
            return cursor
        await self.session.execute(
            update(IntegrationConnection)
            .where(
                IntegrationConnection.shop_id == shop_id,
                IntegrationConnection.kind == KIND,
                IntegrationConnection.event_cursor < settled,
            )
            .values(event_cursor=settled)
        )
        await self.session.execute(
            delete(EventSync).where(EventSync.shop_id == shop_id, EventSync.event_id <= settled)
        )
        return int(settled)
