"""Which shops' history imports the hourly sweep sends again: lost or stopped, not running."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.imports.tasks import unfinished_imports
from app.models import Platform, Shop, ShopStatus
from app.models.base import utcnow
from app.state import State


async def test_only_lost_or_stopped_imports_of_installed_shopify_shops_are_found(
    state: State, session: AsyncSession
) -> None:
    # given shops in every state an import can be in
    now = utcnow()
    hours = timedelta(hours=1)

    def shop(name: str, **values: object) -> Shop:
        defaults: dict[str, object] = {
            "domain": f"{name}.myshopify.com",
            "status": ShopStatus.installed,
            "installed_at": now - 3 * hours,
        }
        return Shop(**(defaults | values))

    session.add_all(
        [
            shop("lost"),
            shop("stopped", history_import_started_at=now - 30 * hours),
            shop("running", history_import_started_at=now - 2 * hours),
            shop("finished", history_import_started_at=now - 3 * hours, history_imported_at=now),
            shop("just-installed", installed_at=now - timedelta(minutes=10)),
            shop("gone", status=ShopStatus.uninstalled),
            shop("woo", platform=Platform.woocommerce),
        ]
    )
    await session.commit()

    # when the sweep looks for unfinished imports
    found = await unfinished_imports(state)

    # then it finds the lost one and the one that stopped a day ago, nothing else
    domains = {shop.id: shop.domain for shop in await session.scalars(select(Shop))}
    assert [domains[shop_id] for shop_id in found] == [
        "lost.myshopify.com",
        "stopped.myshopify.com",
    ]
