"""Integrations: connect and disconnect Klaviyo and Judge.me, their sync status and last
error, and the WooCommerce connection. Credentials are checked with the tool before
anything is stored (the same services `stamp connect` uses)."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.admin.edge import AdminContext, Refused, back_to, page
from app.admin.repository import AdminRepository
from app.errors import AppError, NotFound
from app.integrations.judgeme import service as judgeme
from app.integrations.klaviyo import service as klaviyo
from app.models import Platform
from app.models.integration import IntegrationKind

# Other connectors (outgoing webhooks, Mailchimp, Segment) add a card here: a template under
# `templates/integrations/` rendered with the page's context, listed in display order.
MORE_CARDS: list[str] = ["integrations/_more.html"]


async def _render(
    ctx: AdminContext, errors: dict[str, str] | None = None, status_code: int = 200
) -> Response:
    connections = await AdminRepository(ctx.session).connections(ctx.shop.id)
    return ctx.render(
        "integrations.html",
        status_code=status_code,
        klaviyo=await klaviyo.status(ctx.session, ctx.shop),
        judgeme=connections.get(IntegrationKind.judgeme),
        woocommerce=ctx.shop if ctx.shop.platform == Platform.woocommerce else None,
        errors=errors or {},
        more_cards=MORE_CARDS,
    )


async def show(ctx: AdminContext) -> Response:
    done = ctx.request.query_params.get("done")
    if done:
        ctx.notices.append(done)
    return await _render(ctx)


async def connect(ctx: AdminContext) -> Response:
    kind = ctx.request.path_params["kind"]
    secret = ctx.field("secret").strip()
    field = f"{kind}.secret"
    try:
        if kind == IntegrationKind.klaviyo:
            checked = await klaviyo.check_key(ctx.state, secret)
            await klaviyo.save_key(ctx.session, ctx.state.cipher, ctx.shop, checked)
            return back_to(
                ctx, "/admin/integrations", done="Klaviyo connected; the first sync has started"
            )
        if kind == IntegrationKind.judgeme:
            await judgeme.register_webhooks(ctx.state, ctx.shop, secret)
            await judgeme.save_token(ctx.session, ctx.state.cipher, ctx.shop, secret)
            return back_to(ctx, "/admin/integrations", done="Judge.me connected")
    except AppError as exc:
        raise Refused(await _render(ctx, {field: exc.message}, 422)) from exc
    raise NotFound(f"No integration {kind!r}", code="not_found")


async def disconnect(ctx: AdminContext) -> Response:
    kind = ctx.request.path_params["kind"]
    if kind == IntegrationKind.klaviyo:
        await klaviyo.disconnect(ctx.session, ctx.shop)
        return back_to(ctx, "/admin/integrations", done="Klaviyo disconnected")
    if kind == IntegrationKind.judgeme:
        await judgeme.disconnect(ctx.session, ctx.shop)
        return back_to(ctx, "/admin/integrations", done="Judge.me disconnected")
    raise NotFound(f"No integration {kind!r}", code="not_found")


routes: list[BaseRoute] = [
    Route("/admin/integrations", page(show), methods=["GET"]),
    Route("/admin/integrations/{kind}/connect", page(connect), methods=["POST"]),
    Route("/admin/integrations/{kind}/disconnect", page(disconnect), methods=["POST"]),
]
