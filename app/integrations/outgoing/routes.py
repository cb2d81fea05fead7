"""Headless API for outgoing webhooks: REST hooks as Zapier and Make subscribe them.

No idempotency key on create: its response carries the signing secret, which Stamp
stores only encrypted, never in the idempotency table. Zapier subscribes once per zap.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from app.api.edge import ApiContext, ApiResult, endpoint, render
from app.api.openapi import Operation
from app.api.pagination import decode_cursor, encode_cursor
from app.errors import NotFound
from app.integrations.outgoing import service
from app.integrations.outgoing.schemas import (
    DeliveryOut,
    DeliveryPage,
    SubscriptionCreated,
    SubscriptionIn,
    SubscriptionOut,
    SubscriptionPage,
)
from app.ledger.schemas import PageQuery

BASE = "/api/v1/webhook-subscriptions"
ONE = BASE + "/{subscription_id}"
DELIVERIES = ONE + "/deliveries"
REPLAY = DELIVERIES + "/{delivery_id}/replay"
ENABLE = ONE + "/enable"


def _id(ctx: ApiContext, name: str) -> int:
    raw = str(ctx.request.path_params[name])
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        what = "webhook subscription" if name == "subscription_id" else "delivery"
        raise NotFound(f"No {what} with that id", code=f"{name.removesuffix('_id')}_not_found")
    return int(raw)


async def create_subscription(ctx: ApiContext) -> ApiResult:
    """Subscribe a URL to Stamp events; the response's `secret` signs every delivery."""
    body = await ctx.body(SubscriptionIn)
    return render(await service.create_subscription(ctx.session, ctx.state, ctx.shop, body), 201)


async def list_subscriptions(ctx: ApiContext) -> ApiResult:
    """The shop's webhook subscriptions, newest first, with why any was disabled."""
    query = ctx.query(PageQuery)
    rows = await service.list_subscriptions(
        ctx.session, ctx.shop, query.limit + 1, decode_cursor("w", query.cursor)
    )
    page, more = rows[: query.limit], len(rows) > query.limit
    return SubscriptionPage(
        data=page, next_cursor=encode_cursor("w", page[-1].id) if more else None
    )


async def delete_subscription(ctx: ApiContext) -> ApiResult:
    """Unsubscribe: nothing more is delivered to the URL."""
    await service.delete_subscription(ctx.session, ctx.shop, _id(ctx, "subscription_id"))
    return Response(status_code=204)


async def enable_subscription(ctx: ApiContext) -> ApiResult:
    """Resume a disabled subscription; deliveries still pending are attempted again."""
    return await service.enable_subscription(
        ctx.session, ctx.state, ctx.shop, _id(ctx, "subscription_id")
    )


async def list_deliveries(ctx: ApiContext) -> ApiResult:
    """The delivery log, newest first: status, attempts, last answer, next attempt."""
    query = ctx.query(PageQuery)
    rows = await service.deliveries(
        ctx.session,
        ctx.shop,
        _id(ctx, "subscription_id"),
        query.limit + 1,
        decode_cursor("d", query.cursor),
    )
    page, more = rows[: query.limit], len(rows) > query.limit
    return DeliveryPage(data=page, next_cursor=encode_cursor("d", page[-1].id) if more else None)


async def replay_delivery(ctx: ApiContext) -> ApiResult:
    """Deliver again, with the same event id and a fresh day of retries."""
    delivery = await service.replay(
        ctx.session, ctx.shop, _id(ctx, "subscription_id"), _id(ctx, "delivery_id")
    )
    return render(delivery, 202)


routes = [
    Route(BASE, endpoint(create_subscription), methods=["POST"]),
    Route(BASE, endpoint(list_subscriptions), methods=["GET"]),
    Route(ONE, endpoint(delete_subscription), methods=["DELETE"]),
    Route(ENABLE, endpoint(enable_subscription), methods=["POST"]),
    Route(DELIVERIES, endpoint(list_deliveries), methods=["GET"]),
    Route(REPLAY, endpoint(replay_delivery), methods=["POST"]),
]

operations = [
    Operation(
        "POST",
        BASE,
        "Subscribe a URL to Stamp events (REST hook)",
        create_subscription,
        body=SubscriptionIn,
        response=SubscriptionCreated,
        status_code=201,
        errors=(400, 401, 409, 422),
    ),
    Operation(
        "GET",
        BASE,
        "List webhook subscriptions",
        list_subscriptions,
        query=PageQuery,
        response=SubscriptionPage,
        errors=(400, 401, 422),
    ),
    Operation(
        "DELETE",
        ONE,
        "Unsubscribe a URL",
        delete_subscription,
        path_params=("subscription_id",),
        status_code=204,
        errors=(401, 404),
    ),
    Operation(
        "POST",
        ENABLE,
        "Enable a disabled subscription",
        enable_subscription,
        path_params=("subscription_id",),
        response=SubscriptionOut,
        errors=(401, 404, 422),
    ),
    Operation(
        "GET",
        DELIVERIES,
        "A subscription's delivery log",
        list_deliveries,
        path_params=("subscription_id",),
        query=PageQuery,
        response=DeliveryPage,
        errors=(400, 401, 404, 422),
    ),
    Operation(
        "POST",
        REPLAY,
        "Replay a delivery",
        replay_delivery,
        path_params=("subscription_id", "delivery_id"),
        response=DeliveryOut,
        status_code=202,
        errors=(401, 404, 409),
    ),
]
