"""Home: the onboarding checklist, the program's figures over a date range, CSV exports."""

from __future__ import annotations

from datetime import timedelta

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.admin import service
from app.admin.edge import AdminContext, page
from app.admin.repository import AdminRepository
from app.errors import NotFound
from app.models.base import utcnow
from app.models.integration import ConnectionStatus, IntegrationKind
from app.program.service import current_config

PRESETS = (7, 30, 90, 365)


async def _analytics(ctx: AdminContext) -> service.Analytics:
    params = ctx.request.query_params
    period = service.date_range(params.get("from"), params.get("to"), utcnow().date())
    config = await current_config(ctx.session, ctx.shop)
    return await service.analytics(ctx.session, ctx.shop, config, period)


async def home(ctx: AdminContext) -> Response:
    """Figures and charts for the range, under the first-run checklist."""
    data = await _analytics(ctx)
    repo = AdminRepository(ctx.session)
    connections = await repo.connections(ctx.shop.id)
    klaviyo = connections.get(IntegrationKind.klaviyo)
    steps = service.checklist(
        ctx.shop,
        ctx.state.settings.shopify_api_key,
        reviewed=await repo.program_reviewed(ctx.shop.id),
        klaviyo_connected=klaviyo is not None and klaviyo.status == ConnectionStatus.connected,
        links={
            "program": ctx.url("/admin/program"),
            "integrations": ctx.url("/admin/integrations"),
        },
    )
    today = utcnow().date()
    presets = [
        (
            f"Last {days} days",
            ctx.url("/admin", **{"from": (today - timedelta(days=days - 1)).isoformat()}),
        )
        for days in PRESETS
    ]
    period = {"from": data.period.first.isoformat(), "to": data.period.last.isoformat()}
    return ctx.render(
        "home.html",
        data=data,
        tables=service.tables(data),
        charts=service.charts(data),
        steps=steps,
        presets=presets,
        period=period,
        export=lambda name: ctx.url(f"/admin/export/{name}.csv", **period),
    )


async def export(ctx: AdminContext) -> Response:
    """One table of the home page as CSV, for the same date range."""
    name = ctx.request.path_params["table"]
    data = await _analytics(ctx)
    for table in service.tables(data):
        if table.name == name:
            filename = f"stamp-{name}-{data.period.first}-{data.period.last}.csv"
            return Response(
                service.csv_text(table),
                media_type="text/csv; charset=utf-8",
                headers={
                    "Content-Disposition": f'attachment; filename="{filename}"',
                    "Cache-Control": "private, no-store",
                },
            )
    raise NotFound(f"No table {name!r}", code="table_not_found")


home_page = page(home)

routes: list[BaseRoute] = [
    Route("/admin/export/{table}.csv", page(export), methods=["GET"]),
]
