"""Outgoing webhook subscriptions on the Integrations page: add one (its secret is shown
once), delete, re-enable a disabled one, and each subscription's delivery log with
replay. Every rule is `integrations.outgoing.service`'s, the same the API uses."""

from __future__ import annotations

from pydantic import ValidationError
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.admin.edge import AdminContext, Refused, back_to, page
from app.admin.pages.integrations import render, show
from app.errors import AppError, NotFound
from app.integrations.outgoing import service
from app.integrations.outgoing.schemas import SubscriptionIn

LOG_LIMIT = 100
# A 19-digit id no longer fits the database's integer: treat it as unknown, not a crash.
MAX_ID_DIGITS = 18


def _id(ctx: AdminContext, name: str) -> int:
    raw = ctx.request.path_params[name]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_ID_DIGITS:
        what = "webhook subscription" if name == "subscription_id" else "delivery"
        raise NotFound(f"No {what} with that id", code=f"{name.removesuffix('_id')}_not_found")
    return int(raw)


def _errors(exc: ValidationError) -> dict[str, str]:
    """Pydantic's complaints, next to the field they are about."""
    errors: dict[str, str] = {}
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "url"
        if field == "url":
            message = "Enter the https URL that should receive the events"
        elif error["type"] == "too_short":
            message = "Choose at least one event"
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
        errors.setdefault(f"webhooks.{field}", message)
    return errors


async def create(ctx: AdminContext) -> Response:
    url = ctx.field("url").strip()
    events = (
        [value for value in ctx.form.getlist("events") if isinstance(value, str)]
        if ctx.form is not None
        else []
    )
    form = {"url": url, "events": events}
    try:
        body = SubscriptionIn(url=url, events=events)
    except ValidationError as exc:
        raise Refused(await render(ctx, _errors(exc), 422, form=form)) from exc
    try:
        created = await service.create_subscription(ctx.session, ctx.state, ctx.shop, body)
    except AppError as exc:
        raise Refused(await render(ctx, {"webhooks.url": exc.message}, 422, form=form)) from exc
    ctx.notices.append("Webhook subscription added")
    return await render(ctx, created=created)


async def delete(ctx: AdminContext) -> Response:
    await service.delete_subscription(ctx.session, ctx.shop, _id(ctx, "subscription_id"))
    return back_to(ctx, "/admin/integrations", done="Webhook subscription deleted")


async def enable(ctx: AdminContext) -> Response:
    subscription_id = _id(ctx, "subscription_id")
    try:
        await service.enable_subscription(ctx.session, ctx.state, ctx.shop, subscription_id)
    except NotFound:
        raise
    except AppError as exc:
        raise Refused(await render(ctx, {f"webhooks.{subscription_id}": exc.message}, 422)) from exc
    return back_to(ctx, "/admin/integrations", done="Webhook subscription enabled")


async def log(ctx: AdminContext) -> Response:
    subscription_id = _id(ctx, "subscription_id")
    subscription = await service.get_subscription(ctx.session, ctx.shop, subscription_id)
    deliveries = await service.deliveries(ctx.session, ctx.shop, subscription_id, LOG_LIMIT)
    replayed = ctx.request.query_params.get("replayed")
    if replayed:
        ctx.notices.append(f"Delivery {replayed} queued to be sent again")
    return ctx.render(
        "webhook_deliveries.html", subscription=subscription, deliveries=deliveries, error=None
    )


async def replay(ctx: AdminContext) -> Response:
    subscription_id = _id(ctx, "subscription_id")
    delivery_id = _id(ctx, "delivery_id")
    try:
        await service.replay(ctx.session, ctx.shop, subscription_id, delivery_id)
    except NotFound:
        raise
    except AppError as exc:
        subscription = await service.get_subscription(ctx.session, ctx.shop, subscription_id)
        deliveries = await service.deliveries(ctx.session, ctx.shop, subscription_id, LOG_LIMIT)
        raise Refused(
            ctx.render(
                "webhook_deliveries.html",
                status_code=exc.status_code,
                subscription=subscription,
                deliveries=deliveries,
                error=exc.message,
            )
        ) from exc
    return back_to(
        ctx, f"/admin/integrations/webhooks/{subscription_id}", replayed=str(delivery_id)
    )


routes: list[BaseRoute] = [
    Route("/admin/integrations/webhooks", page(create), methods=["POST"]),
    Route("/admin/integrations/webhooks", page(show), methods=["GET"]),
    Route("/admin/integrations/webhooks/{subscription_id}", page(log), methods=["GET"]),
    Route("/admin/integrations/webhooks/{subscription_id}/delete", page(delete), methods=["POST"]),
    Route("/admin/integrations/webhooks/{subscription_id}/enable", page(enable), methods=["POST"]),
    Route(
        "/admin/integrations/webhooks/{subscription_id}/deliveries/{delivery_id}/replay",
        page(replay),
        methods=["POST"],
    ),
]
