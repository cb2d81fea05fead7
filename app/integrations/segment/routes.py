"""Headless API for the Segment connector: its webhook URL, event map and sync status."""

from __future__ import annotations

from starlette.routing import Route

from app.api.edge import ApiContext, ApiResult, endpoint
from app.api.openapi import Operation
from app.integrations.segment import service

STATUS_PATH = "/api/v1/integrations/segment/status"


async def segment_status(ctx: ApiContext) -> ApiResult:
    """The webhook destination URL, mapped events, whether identify calls are on, errors."""
    return await service.status(ctx.session, ctx.state.settings, ctx.shop)


routes = [Route(STATUS_PATH, endpoint(segment_status), methods=["GET"])]

operations = [
    Operation(
        "GET",
        STATUS_PATH,
        "Segment connection status",
        segment_status,
        response=service.SegmentStatus,
        errors=(401,),
    )
]
