"""Apply one WooCommerce order, as it stands now, to the ledger through the shared engine.

Webhook deliveries and the polling reconcile both land here, so an order that arrives
twice, late, or only through polling has exactly one effect: the engine is idempotent on
the order id (earning) and the refund id (reversals). WooCommerce builds payloads at send
time, so a paid status after a cancellation is real: the order is reinstated (earns once net).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.ledger import engine
from app.models import Shop
from app.program.config import EarningTrigger
from app.program.service import current_config
from webhooks.woocommerce.normalise import OrderState, WooOrder, order_from_payload


def occasion_for(state: OrderState, trigger: EarningTrigger) -> engine.OrderOccasion:
    """`paid` programs earn at processing or completed; `fulfilled` ones only at completed."""
    if state is OrderState.processing:
        return engine.OrderOccasion.paid
    if state is OrderState.completed:
        if trigger is EarningTrigger.fulfilled:
            return engine.OrderOccasion.fulfilled
        return engine.OrderOccasion.paid
    return engine.OrderOccasion.updated


async def apply_woo_order(session: AsyncSession, shop: Shop, woo: WooOrder) -> None:
    config = await current_config(session, shop)
    occasion = occasion_for(woo.state, config.earning.trigger)
    if woo.cancellation is None and engine.order_earns_now(woo.order, occasion, config):
        # Back to processing/completed after a cancellation: WooCommerce can un-cancel.
        await engine.order_reinstated(session, shop, woo.order)
    await engine.apply(session, shop, woo.order, occasion=occasion)
    if woo.cancellation is not None:
        await engine.apply(session, shop, woo.cancellation)
    for refund in woo.refunds:
        await engine.apply(session, shop, refund)


async def apply_order(session: AsyncSession, shop: Shop, payload: Any) -> WooOrder:
    """Normalise a full order object and apply it; raises `PayloadError` if it is not one."""
    woo = order_from_payload(payload)
    await apply_woo_order(session, shop, woo)
    return woo
