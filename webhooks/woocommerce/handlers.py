"""One handler per WooCommerce topic; the allow-list is this table.

Order topics all go through the same handler because the payload, not the topic, says what
happened (WooCommerce builds it at send time). `order.deleted` carries only `{"id": N}`:
trashing an order is not a cancellation, so it changes no points (cancel or refund does).
"""

from __future__ import annotations

from typing import Any

from app.integrations.woocommerce.orders import apply_order
from app.ledger import engine
from webhooks.pipeline import Handler, HandlerContext
from webhooks.shopify.normalise import PayloadError
from webhooks.woocommerce.normalise import customer_from_payload


async def order_topic(ctx: HandlerContext, payload: Any) -> None:
    await apply_order(ctx.session, ctx.shop, payload)


async def order_deleted(ctx: HandlerContext, payload: Any) -> None:
    if not isinstance(payload, dict) or "id" not in payload:
        raise PayloadError('order.deleted: expected {"id": ...}')


async def customer_created(ctx: HandlerContext, payload: Any) -> None:
    await engine.apply(ctx.session, ctx.shop, customer_from_payload(payload))


HANDLERS: dict[str, Handler] = {
    "order.created": order_topic,
    "order.updated": order_topic,
    "order.restored": order_topic,
    "order.deleted": order_deleted,
    "customer.created": customer_created,
}
