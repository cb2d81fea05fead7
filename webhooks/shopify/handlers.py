"""One handler per Shopify topic; the allow-list is this table.

Each handler runs inside the pipeline's transaction and only flushes.
"""

from __future__ import annotations

import logging
from typing import Any

from app.ledger import engine
from app.ledger.batch import OrderDelivery
from app.models import ShopStatus
from app.models.base import utcnow
from app.privacy import service as privacy
from app.referrals.service import order_signals
from webhooks.pipeline import Handler, HandlerContext
from webhooks.shopify.normalise import customer_event, order_event, refund_event

logger = logging.getLogger("stamp.webhooks.shopify")

COMPLIANCE_TOPICS = frozenset({"customers/data_request", "customers/redact", "shop/redact"})
LIFECYCLE_TOPICS = frozenset({"app/uninstalled"})


def json_object(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise ValueError("expected a JSON object")
    return payload


async def app_uninstalled(ctx: HandlerContext, payload: Any) -> None:
    """Stop using the credentials at once; keep the data until `shop/redact` asks otherwise."""
    json_object(payload)
    shop = ctx.shop
    shop.access_token_enc = None
    shop.refresh_token_enc = None
    shop.access_token_expires_at = None
    shop.refresh_token_expires_at = None
    if shop.status == ShopStatus.installed:
        shop.status = ShopStatus.uninstalled
        shop.uninstalled_at = utcnow()
    await ctx.session.flush()


async def customers_data_request(ctx: HandlerContext, payload: Any) -> None:
    await privacy.export_customer(ctx.session, ctx.shop, json_object(payload), ctx.delivery.body)


async def customers_redact(ctx: HandlerContext, payload: Any) -> None:
    await privacy.redact_customer(ctx.session, ctx.shop, json_object(payload), ctx.delivery.body)


async def shop_redact(ctx: HandlerContext, payload: Any) -> None:
    json_object(payload)
    if ctx.shop.status == ShopStatus.installed:
        # Shopify does not send this after a reinstall; if it does, the merchant is back.
        logger.warning("shop/redact for %s while installed: data kept", ctx.shop.domain)
        return
    await privacy.redact_shop(ctx.session, ctx.shop, ctx.delivery.body)


OCCASIONS = {
    "orders/create": engine.OrderOccasion.created,
    "orders/paid": engine.OrderOccasion.paid,
    "orders/fulfilled": engine.OrderOccasion.fulfilled,
    "orders/updated": engine.OrderOccasion.updated,
}


def order_delivery(topic: str, payload: Any) -> OrderDelivery:
    """An order topic's payload as the engine takes it (raises if it cannot be read)."""
    data = json_object(payload)
    occasion = OCCASIONS.get(topic, engine.OrderOccasion.updated)
    return OrderDelivery(order_event(topic, data), occasion, lambda: order_signals(data))


async def order_topic(ctx: HandlerContext, payload: Any) -> None:
    """Every order topic lands here; the program's trigger decides which one earns."""
    order = order_delivery(ctx.delivery.topic, payload)
    await engine.apply(
        ctx.session, ctx.shop, order.event, occasion=order.occasion, signals=order.signals()
    )


async def refunds_create(ctx: HandlerContext, payload: Any) -> None:
    event = refund_event(json_object(payload), shop_currency=ctx.shop.currency)
    await engine.apply(ctx.session, ctx.shop, event)


async def customer_topic(ctx: HandlerContext, payload: Any) -> None:
    event = customer_event(ctx.delivery.topic, json_object(payload))
    await engine.apply(ctx.session, ctx.shop, event)


async def email_marketing_consent(ctx: HandlerContext, payload: Any) -> None:
    """Consent for the Mailchimp connector: only `subscribed` customers are ever added."""
    from datetime import UTC, datetime

    from app.integrations.connections import ConsentRepository

    data = json_object(payload)
    consent = data.get("email_marketing_consent")
    customer_id = data.get("customer_id")
    if not isinstance(consent, dict) or customer_id is None or not consent.get("state"):
        raise ValueError("expected customer_id and email_marketing_consent.state")
    updated = consent.get("consent_updated_at")
    when = datetime.fromisoformat(updated) if isinstance(updated, str) else None
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    await ConsentRepository(ctx.session).upsert(
        ctx.shop.id,
        str(customer_id),
        str(consent["state"]).lower(),
        str(consent["opt_in_level"]).lower() if consent.get("opt_in_level") else None,
        when,
    )


HANDLERS: dict[str, Handler] = {
    "orders/create": order_topic,
    "orders/paid": order_topic,
    "orders/fulfilled": order_topic,
    "orders/cancelled": order_topic,
    "refunds/create": refunds_create,
    "customers/create": customer_topic,
    "customers/update": customer_topic,
    "customers_email_marketing_consent/update": email_marketing_consent,
    "app/uninstalled": app_uninstalled,
    "customers/data_request": customers_data_request,
    "customers/redact": customers_redact,
    "shop/redact": shop_redact,
}
