"""Integrations: connect and disconnect Klaviyo, Judge.me, Mailchimp and Segment, their
sync status and last error, the WooCommerce connection, and the outgoing webhook
subscriptions (`pages/webhooks.py`). Credentials are checked with the tool before
anything is stored (the same services `stamp connect` and the API use)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.admin.edge import AdminContext, Refused, back_to, page
from app.admin.repository import AdminRepository
from app.errors import AppError, NotFound
from app.integrations.judgeme import service as judgeme
from app.integrations.klaviyo import service as klaviyo
from app.integrations.mailchimp import service as mailchimp
from app.integrations.mailchimp.client import MailchimpAuthError
from app.integrations.outgoing import service as outgoing
from app.integrations.outgoing.schemas import EVENT_TYPES
from app.integrations.segment import service as segment
from app.models import ConnectorKind, Platform
from app.models.integration import IntegrationKind
from app.program.service import current_config

# The connectors' cards, rendered with the page's context in display order.
MORE_CARDS: list[str] = [
    "integrations/_webhooks.html",
    "integrations/_mailchimp.html",
    "integrations/_segment.html",
]
# Rows of "Segment event → custom action" the connect form offers.
SEGMENT_ROWS = 5
MAILCHIMP_KEY_CODES = frozenset({"mailchimp_key_invalid", MailchimpAuthError.code})


async def render(
    ctx: AdminContext,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
    **extra: object,
) -> Response:
    """The page with every card; `extra` carries what a form shows once or keeps typed."""
    connections = await AdminRepository(ctx.session).connections(ctx.shop.id)
    config = await current_config(ctx.session, ctx.shop)
    context: dict[str, object] = {
        "klaviyo": await klaviyo.status(ctx.session, ctx.shop),
        "judgeme": connections.get(IntegrationKind.judgeme),
        "woocommerce": ctx.shop if ctx.shop.platform == Platform.woocommerce else None,
        "subscriptions": await outgoing.list_subscriptions(
            ctx.session, ctx.shop, outgoing.MAX_SUBSCRIPTIONS
        ),
        "event_types": EVENT_TYPES,
        "mailchimp": await mailchimp.status(ctx.session, ctx.shop),
        "segment": await segment.status(ctx.session, ctx.state.settings, ctx.shop),
        "custom_actions": [(a.key, a.name) for a in config.custom_actions],
        "segment_rows": SEGMENT_ROWS,
        "created": None,
        "segment_connected": None,
        "mailchimp_audiences": None,
        "form": {},
        "errors": errors or {},
        "more_cards": MORE_CARDS,
    }
    context.update(extra)
    return ctx.render("integrations.html", status_code=status_code, **context)


async def show(ctx: AdminContext) -> Response:
    done = ctx.request.query_params.get("done")
    if done:
        ctx.notices.append(done)
    return await render(ctx)


async def connect_klaviyo(ctx: AdminContext) -> Response:
    try:
        checked = await klaviyo.check_key(ctx.state, ctx.field("secret").strip())
    except AppError as exc:
        raise Refused(await render(ctx, {"klaviyo.secret": exc.message}, 422)) from exc
    await klaviyo.save_key(ctx.session, ctx.state.cipher, ctx.shop, checked)
    return back_to(ctx, "/admin/integrations", done="Klaviyo connected; the first sync has started")


async def connect_judgeme(ctx: AdminContext) -> Response:
    secret = ctx.field("secret").strip()
    try:
        await judgeme.register_webhooks(ctx.state, ctx.shop, secret)
    except AppError as exc:
        raise Refused(await render(ctx, {"judgeme.secret": exc.message}, 422)) from exc
    await judgeme.save_token(ctx.session, ctx.state.cipher, ctx.shop, secret)
    return back_to(ctx, "/admin/integrations", done="Judge.me connected")


async def connect_mailchimp(ctx: AdminContext) -> Response:
    """Two steps on one form: the key lists the audiences; key + audience connects."""
    api_key = ctx.field("api_key").strip()
    audience_id = ctx.field("audience_id").strip()
    add_transactional = ctx.field("add_transactional") == "on"
    form = {"audience_id": audience_id, "add_transactional": add_transactional}
    if not api_key:
        raise Refused(await render(ctx, {"mailchimp.api_key": "Enter your Mailchimp API key"}, 422))
    try:
        if not audience_id:
            choices = await mailchimp.audiences(ctx.state, api_key)
            if not choices:
                raise Refused(
                    await render(
                        ctx,
                        {"mailchimp.api_key": "This Mailchimp account has no audience yet"},
                        422,
                    )
                )
            return await render(ctx, mailchimp_audiences=choices, mailchimp_key=api_key)
        checked = await mailchimp.prepare(ctx.state, api_key, audience_id)
    except AppError as exc:
        name = "mailchimp.api_key" if exc.code in MAILCHIMP_KEY_CODES else "mailchimp.audience_id"
        raise Refused(await render(ctx, {name: exc.message}, 422, form=form)) from exc
    await mailchimp.save(
        ctx.session,
        ctx.state.cipher,
        ctx.shop,
        checked,
        audience_id,
        add_transactional=add_transactional,
    )
    return back_to(
        ctx, "/admin/integrations", done="Mailchimp connected; the first sync has started"
    )


async def connect_segment(ctx: AdminContext) -> Response:
    """Save the event map; the URL and shared secret are shown this once."""
    pairs = [
        (ctx.field(f"event_{row}").strip(), ctx.field(f"action_{row}").strip())
        for row in range(SEGMENT_ROWS)
    ]
    events = {name: action for name, action in pairs if name or action}
    shared_secret = ctx.field("shared_secret").strip()
    write_key = ctx.field("write_key").strip()
    form = {"pairs": pairs}
    try:
        connected = await segment.connect(
            ctx.session,
            ctx.state.cipher,
            ctx.state.settings,
            ctx.shop,
            events,
            shared_secret=shared_secret or None,
            write_key=write_key or None,
        )
    except AppError as exc:
        name = "segment.shared_secret" if exc.code.startswith("shared_secret") else "segment.events"
        raise Refused(await render(ctx, {name: exc.message}, 422, form=form)) from exc
    ctx.notices.append("Segment connected")
    return await render(ctx, segment_connected=connected)


CONNECT: dict[str, Callable[[AdminContext], Awaitable[Response]]] = {
    IntegrationKind.klaviyo: connect_klaviyo,
    IntegrationKind.judgeme: connect_judgeme,
    ConnectorKind.mailchimp: connect_mailchimp,
    ConnectorKind.segment: connect_segment,
}


async def connect(ctx: AdminContext) -> Response:
    kind = ctx.request.path_params["kind"]
    handler = CONNECT.get(kind)
    if handler is None:
        raise NotFound(f"No integration {kind!r}", code="not_found")
    return await handler(ctx)


async def disconnect(ctx: AdminContext) -> Response:
    kind = ctx.request.path_params["kind"]
    if kind == IntegrationKind.klaviyo:
        await klaviyo.disconnect(ctx.session, ctx.shop)
        return back_to(ctx, "/admin/integrations", done="Klaviyo disconnected")
    if kind == IntegrationKind.judgeme:
        await judgeme.disconnect(ctx.session, ctx.shop)
        return back_to(ctx, "/admin/integrations", done="Judge.me disconnected")
    if kind == ConnectorKind.mailchimp:
        await mailchimp.disconnect(ctx.session, ctx.shop)
        return back_to(ctx, "/admin/integrations", done="Mailchimp disconnected")
    if kind == ConnectorKind.segment:
        await segment.disconnect(ctx.session, ctx.shop)
        return back_to(ctx, "/admin/integrations", done="Segment disconnected")
    raise NotFound(f"No integration {kind!r}", code="not_found")


routes: list[BaseRoute] = [
    Route("/admin/integrations", page(show), methods=["GET"]),
    # A one-time secret is shown in the answer to the POST itself; reloading that address
    # later shows the page again (without the secret) instead of 405.
    Route("/admin/integrations/{kind}/connect", page(show), methods=["GET"]),
    Route("/admin/integrations/{kind}/connect", page(connect), methods=["POST"]),
    Route("/admin/integrations/{kind}/disconnect", page(disconnect), methods=["POST"]),
]
