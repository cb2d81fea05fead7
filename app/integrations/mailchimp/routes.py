"""Headless API for the Mailchimp connector: the sync status a merchant can act on."""

from __future__ import annotations

from starlette.routing import Route

from app.api.edge import ApiContext, ApiResult, endpoint
from app.api.openapi import Operation
from app.integrations.mailchimp import service

STATUS_PATH = "/api/v1/integrations/mailchimp/status"


async def mailchimp_status(ctx: ApiContext) -> ApiResult:
    """Whether Mailchimp is connected, to which audience, the backlog and the last error."""
    return await service.status(ctx.session, ctx.shop)


routes = [Route(STATUS_PATH, endpoint(mailchimp_status), methods=["GET"])]

operations = [
    Operation(
        "GET",
        STATUS_PATH,
        "Mailchimp sync status",
        mailchimp_status,
        response=service.MailchimpStatus,
        errors=(401,),
    )
]
