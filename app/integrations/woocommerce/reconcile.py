"""Polling reconcile: WooCommerce never retries a failed webhook, so Stamp asks instead.

Each run lists the orders modified since `since` (`GET /orders?modified_after=...`,
oldest first) and applies each through the same code as a webhook; the engine's
idempotency makes an order already seen a no-op. It also re-enables Stamp's webhooks that
WooCommerce disabled after failed deliveries. Without a stored cursor the job uses an
overlapping look-back window, so a missed run is covered by the next.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select

from app.db import unit_of_work
from app.integrations.woocommerce.client import WooError, client_for_shop
from app.integrations.woocommerce.orders import apply_order
from app.integrations.woocommerce.subscriptions import ensure_webhooks
from app.models import Platform, Shop, ShopStatus
from app.state import State
from webhooks.shopify.normalise import PayloadError

logger = logging.getLogger("stamp.woocommerce.reconcile")

PAGE_SIZE = 50
MAX_PAGES = 40  # 2,000 orders a run per shop; the rest waits for the next run
LOOKBACK = timedelta(hours=6)


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    orders_seen: int
    orders_failed: int
    webhooks_reactivated: tuple[str, ...]


def _gmt(moment: datetime) -> str:
    """WooCommerce's `modified_after` with `dates_are_gmt`: UTC, no offset."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


async def reconcile_shop(state: State, shop_id: int, since: datetime) -> ReconcileResult:
    """Apply every order modified since `since` and revive disabled webhooks, for one shop."""
    async with state.sessionmaker() as session:
        shop = await session.get(Shop, shop_id)
    if shop is None or shop.status != ShopStatus.installed:
        return ReconcileResult(0, 0, ())
    client = client_for_shop(state, shop)
    sync = await ensure_webhooks(client, state.settings, shop.id, secret=None)
    seen = failed = 0
    for page in range(1, MAX_PAGES + 1):
        orders = await client.get(
            "/orders",
            modified_after=_gmt(since),
            dates_are_gmt="true",
            orderby="modified",
            order="asc",
            per_page=PAGE_SIZE,
            page=page,
        )
        if not isinstance(orders, list):
            raise WooError("GET /orders did not answer a list")
        for payload in orders:
            seen += 1
            try:
                async with unit_of_work(state.sessionmaker) as session:
                    current = await session.get(Shop, shop.id)
                    assert current is not None
                    await apply_order(session, current, payload)
            except PayloadError as exc:
                failed += 1
                logger.warning("shop %s: order not applied by reconcile: %s", shop.id, exc)
        if len(orders) < PAGE_SIZE:
            break
    return ReconcileResult(seen, failed, sync.reactivated)


async def connected_shop_ids(state: State) -> list[int]:
    async with state.sessionmaker() as session:
        result = await session.execute(
            select(Shop.id).where(
                Shop.platform == Platform.woocommerce, Shop.status == ShopStatus.installed
            )
        )
        return list(result.scalars())


async def reconcile_all(state: State, now: datetime) -> int:
    """Every connected store; one store's failure does not stop the others."""
    done = 0
    for shop_id in await connected_shop_ids(state):
        try:
            await reconcile_shop(state, shop_id, now - LOOKBACK)
            done += 1
        except (WooError, httpx.HTTPError, ValueError) as exc:
            logger.warning("shop %s: reconcile failed: %s", shop_id, exc)
    return done
