"""SQL shared by the Mailchimp and Segment connectors: the connection row, the run lease,
and the member backlog (members whose change mark differs from the one last sent).

The backlog works like the Klaviyo one (`app/integrations/klaviyo/repository.py`) but is
kept per connector kind, so each tool catches up on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import dialect_insert
from app.integrations.klaviyo.repository import change_mark
from app.models import (
    ConnectionStatus,
    ConnectorConnection,
    ConnectorMemberSync,
    EmailConsent,
    Member,
    Shop,
    ShopStatus,
    WinbackState,
)
from app.models.base import utcnow


@dataclass(frozen=True, slots=True)
class MemberRow:
    member: Member
    mark: datetime
    synced_hash: str | None
    winback_status: str | None
    consent: str | None  # Shopify's email marketing state, lower-cased, or None if unknown


@dataclass(frozen=True, slots=True)
class Mark:
    member_id: int
    mark: datetime
    hash: str


class ConnectorRepository:
    def __init__(self, session: AsyncSession, kind: str) -> None:
        self.session = session
        self.kind = kind

    # --- the connection -------------------------------------------------------------------

    async def connection(self, shop_id: int) -> ConnectorConnection | None:
        result = await self.session.execute(
            select(ConnectorConnection)
            .where(ConnectorConnection.shop_id == shop_id, ConnectorConnection.kind == self.kind)
            .execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def add(self, shop_id: int) -> ConnectorConnection:
        connection = ConnectorConnection(
            shop_id=shop_id,
            kind=self.kind,
            status=ConnectionStatus.connected,
            settings={},
            connected_at=utcnow(),
            updated_at=utcnow(),
        )
        self.session.add(connection)
        await self.session.flush()
        return connection

    async def record(self, shop_id: int, **values: Any) -> None:
        await self.session.execute(
            update(ConnectorConnection)
            .where(ConnectorConnection.shop_id == shop_id, ConnectorConnection.kind == self.kind)
            .values(updated_at=utcnow(), **values)
        )

    async def acquire_lease(self, shop_id: int, now: datetime, until: datetime) -> bool:
        result = await self.session.execute(
            update(ConnectorConnection)
            .where(
                ConnectorConnection.shop_id == shop_id,
                ConnectorConnection.kind == self.kind,
                ConnectorConnection.status == ConnectionStatus.connected,
                or_(
                    ConnectorConnection.lease_until.is_(None),
                    ConnectorConnection.lease_until < now,
                ),
            )
            .values(lease_until=until)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def lease_connected(
        self, shop_id: int, now: datetime, until: datetime
    ) -> tuple[str, ConnectorConnection | None]:
        """The connection of an installed shop with its credential, leased for one sync run
        until `until`; otherwise why not: "not_connected" or "busy" (another run holds it)."""
        connection = await self.connection(shop_id)
        shop = await self.session.get(Shop, shop_id)
        if (
            connection is None
            or shop is None
            or connection.secret_enc is None
            or shop.status != ShopStatus.installed
            or connection.status != ConnectionStatus.connected
        ):
            return "not_connected", None
        if not await self.acquire_lease(shop_id, now, until):
            return "busy", None
        return "leased", connection

    async def release_lease(self, shop_id: int, held: datetime) -> None:
        await self.session.execute(
            update(ConnectorConnection)
            .where(
                ConnectorConnection.shop_id == shop_id,
                ConnectorConnection.kind == self.kind,
                ConnectorConnection.lease_until == held,
            )
            .values(lease_until=None)
        )

    async def connected_shop_ids(self) -> list[int]:
        result = await self.session.execute(
            select(ConnectorConnection.shop_id)
            .join(Shop, Shop.id == ConnectorConnection.shop_id)
            .where(
                ConnectorConnection.kind == self.kind,
                ConnectorConnection.status == ConnectionStatus.connected,
                ConnectorConnection.secret_enc.is_not(None),
                Shop.status == ShopStatus.installed,
            )
            .order_by(ConnectorConnection.shop_id)
        )
        return list(result.scalars())

    # --- the member backlog ---------------------------------------------------------------

    def _backlog(self, shop_id: int) -> Any:
        return and_(
            Member.shop_id == shop_id,
            or_(
                ConnectorMemberSync.member_id.is_(None),
                ConnectorMemberSync.synced_mark != change_mark(),
            ),
        )

    def _joined(self, query: Any) -> Any:
        return query.outerjoin(
            ConnectorMemberSync,
            and_(
                ConnectorMemberSync.member_id == Member.id,
                ConnectorMemberSync.kind == self.kind,
            ),
        )

    async def backlog_count(self, shop_id: int) -> int:
        query = self._joined(select(func.count()).select_from(Member)).where(self._backlog(shop_id))
        return int(await self.session.scalar(query) or 0)

    async def backlog_page(self, shop_id: int, after: int, limit: int) -> list[MemberRow]:
        query = (
            self._joined(
                select(
                    Member,
                    change_mark(),
                    ConnectorMemberSync.synced_hash,
                    WinbackState.status,
                    EmailConsent.state,
                )
            )
            .outerjoin(WinbackState, WinbackState.member_id == Member.id)
            .outerjoin(
                EmailConsent,
                and_(
                    EmailConsent.shop_id == Member.shop_id,
                    EmailConsent.customer_id == Member.customer_id,
                ),
            )
            .where(self._backlog(shop_id), Member.id > after)
            .order_by(Member.id)
            .limit(limit)
        )
        result = await self.session.execute(query)
        return [
            MemberRow(row[0], row[1], row[2], row[3], row[4].lower() if row[4] else None)
            for row in result.all()
        ]

    async def mark_synced(self, shop_id: int, marks: Sequence[Mark]) -> None:
        if not marks:
            return
        now = utcnow()
        statement = dialect_insert(self.session)(ConnectorMemberSync)
        statement = statement.on_conflict_do_update(
            index_elements=[ConnectorMemberSync.kind, ConnectorMemberSync.member_id],
            set_={
                "synced_mark": statement.excluded.synced_mark,
                "synced_hash": statement.excluded.synced_hash,
                "synced_at": statement.excluded.synced_at,
            },
        )
        rows = [
            {
                "kind": self.kind,
                "member_id": mark.member_id,
                "shop_id": shop_id,
                "synced_mark": mark.mark,
                "synced_hash": mark.hash,
                "synced_at": now,
            }
            for mark in marks
        ]
        for start in range(0, len(rows), 5000):
            await self.session.execute(statement, rows[start : start + 5000])

    async def forget(self, shop_id: int) -> None:
        """After a disconnect the next account may be another one: send everyone again."""
        await self.session.execute(
            delete(ConnectorMemberSync).where(
                ConnectorMemberSync.shop_id == shop_id, ConnectorMemberSync.kind == self.kind
            )
        )


class ConsentRepository:
    """Email marketing consent by platform customer id (ids only, no email)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def upsert(
        self,
        shop_id: int,
        customer_id: str,
        state: str,
        opt_in_level: str | None,
        consent_updated_at: datetime | None,
    ) -> bool:
        """Store the state unless a newer one is already stored; True when it changed."""
        found = await self.session.scalar(
            select(EmailConsent).where(
                EmailConsent.shop_id == shop_id, EmailConsent.customer_id == customer_id
            )
        )
        now = utcnow()
        if found is None:
            self.session.add(
                EmailConsent(
                    shop_id=shop_id,
                    customer_id=customer_id,
                    state=state,
                    opt_in_level=opt_in_level,
                    consent_updated_at=consent_updated_at,
                    updated_at=now,
                )
            )
        else:
            stale = (
                found.consent_updated_at is not None
                and consent_updated_at is not None
                and consent_updated_at < found.consent_updated_at
            )
            if stale or (found.state, found.opt_in_level) == (state, opt_in_level):
                return False
            found.state, found.opt_in_level = state, opt_in_level
            found.consent_updated_at = consent_updated_at
            found.updated_at = now
        await self.session.execute(
            update(Member)
            .where(Member.shop_id == shop_id, Member.customer_id == customer_id)
            .values(sync_dirty_at=now, updated_at=now)
        )
        await self.session.flush()
        return True
