"""SQL for shops and their install state."""

from __future__ import annotations

from datetime import datetime
from functools import cache

from sqlalchemy import Select, bindparam, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import OAuthState, Platform, Shop, ShopStatus


@cache
def _shop_with_program() -> Select[Shop, int | None]:
    """Built once: constructing a statement costs more than running it on the hot paths."""
    from app.program.service import latest_version_id

    return select(Shop, latest_version_id(Shop.id)).where(
        Shop.platform == bindparam("platform"), Shop.domain == bindparam("domain")
    )


class ShopRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, shop_id: int) -> Shop | None:
        return await self.session.get(Shop, shop_id)

    async def get_by_domain(self, domain: str, platform: str = Platform.shopify) -> Shop | None:
        result = await self.session.execute(
            select(Shop).where(Shop.platform == platform, Shop.domain == domain.lower())
        )
        return result.scalar_one_or_none()

    async def get_with_program(
        self, domain: str, platform: str = Platform.shopify
    ) -> tuple[Shop, int | None] | None:
        """The shop and the id of its current program version, in one statement."""
        row = (
            await self.session.execute(
                _shop_with_program(), {"platform": platform, "domain": domain.lower()}
            )
        ).first()
        return None if row is None else (row[0], row[1])

    async def add(self, shop: Shop) -> Shop:
        self.session.add(shop)
        await self.session.flush()
        return shop

    async def get_or_create_by_domain(self, domain: str, platform: str = Platform.shopify) -> Shop:
        """The shop row, inserted if missing.

        INSERT ... ON CONFLICT DO NOTHING first, so two installs of the same new shop racing
        each other (two embedded loads at once) both end up on the one row instead of one
        of them failing on the unique (platform, domain) constraint.
        """
        domain = domain.lower()
        values = {"platform": platform, "domain": domain}
        if self.session.get_bind().dialect.name == "postgresql":
            await self.session.execute(
                pg_insert(Shop)
                .values(values)
                .on_conflict_do_nothing(index_elements=["platform", "domain"])
            )
        else:
            await self.session.execute(
                sqlite_insert(Shop)
                .values(values)
                .on_conflict_do_nothing(index_elements=["platform", "domain"])
            )
        result = await self.session.execute(
            select(Shop)
            .where(Shop.platform == platform, Shop.domain == domain)
            .execution_options(populate_existing=True)
        )
        return result.scalar_one()

    async def lock(self, shop_id: int) -> Shop | None:
        """Re-read a shop under a row lock (PostgreSQL; SQLite's writer lock already serialises)."""
        result = await self.session.execute(
            select(Shop)
            .where(Shop.id == shop_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def store_tokens(
        self,
        shop: Shop,
        *,
        access_token_enc: bytes,
        access_token_expires_at: datetime | None,
        refresh_token_enc: bytes | None,
        refresh_token_expires_at: datetime | None,
    ) -> None:
        """Replace the whole token pair in one UPDATE: a half-stored pair could not refresh."""
        shop.access_token_enc = access_token_enc
        shop.access_token_expires_at = access_token_expires_at
        shop.refresh_token_enc = refresh_token_enc
        shop.refresh_token_expires_at = refresh_token_expires_at
        await self.session.flush()

    async def history_import_started(self, shop_id: int, at: datetime) -> None:
        await self.session.execute(
            update(Shop).where(Shop.id == shop_id).values(history_import_started_at=at)
        )

    async def history_import_finished(self, shop_id: int, at: datetime) -> None:
        await self.session.execute(
            update(Shop).where(Shop.id == shop_id).values(history_imported_at=at)
        )

    async def unfinished_history_imports(
        self, installed_before: datetime, started_before: datetime
    ) -> list[int]:
        """Installed Shopify shops whose history import never finished and is not running:
        installed before `installed_before`, not started or started before `started_before`."""
        result = await self.session.execute(
            select(Shop.id)
            .where(
                Shop.platform == Platform.shopify,
                Shop.status == ShopStatus.installed,
                Shop.history_imported_at.is_(None),
                Shop.installed_at < installed_before,
                or_(
                    Shop.history_import_started_at.is_(None),
                    Shop.history_import_started_at < started_before,
                ),
            )
            .order_by(Shop.id)
        )
        return list(result.scalars())

    async def add_oauth_state(self, nonce: str, shop_domain: str) -> OAuthState:
        row = OAuthState(nonce=nonce, shop_domain=shop_domain.lower())
        self.session.add(row)
        await self.session.flush()
        return row

    async def consume_oauth_state(self, nonce: str, shop_domain: str) -> bool:
        """Delete the nonce and say whether this call was the one that deleted it.

        DELETE ... RETURNING rather than read-then-delete: of two concurrent callbacks with
        the same state, exactly one gets the row back.
        """
        result = await self.session.execute(
            delete(OAuthState)
            .where(OAuthState.nonce == nonce, OAuthState.shop_domain == shop_domain.lower())
            .returning(OAuthState.nonce)
        )
        return result.scalar_one_or_none() is not None

    async def purge_oauth_states(self, created_before: datetime) -> None:
        """Drop nonces of abandoned installs; their signed state has expired anyway."""
        await self.session.execute(delete(OAuthState).where(OAuthState.created_at < created_before))
