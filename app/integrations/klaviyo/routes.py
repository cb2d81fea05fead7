"""Headless API for the Klaviyo integration: the sync status a merchant can act on."""

from __future__ import annotations

from starlette.routing import Route

from app.api.edge import ApiContext, ApiResult, endpoint
from app.api.openapi import Operation
from app.integrations.klaviyo import service
from app.integrations.klaviyo.schemas import KlaviyoStatus

STATUS_PATH = "/api/v1/integrations/klaviyo/status"


async def klaviyo_status(ctx: ApiContext) -> ApiResult:
    """Whether Klaviyo is connected, its last successful sync, what waits, the last error."""
    return await service.status(ctx.session, ctx.shop)


routes = [Route(STATUS_PATH, endpoint(klaviyo_status), methods=["GET"])]

operations = [
    Operation(
        "GET",
        STATUS_PATH,
        "Klaviyo sync status",
        klaviyo_status,
        response=KlaviyoStatus,
        errors=(401,),
    )
]
