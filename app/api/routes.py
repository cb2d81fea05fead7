"""Every `/api/v1` route, and the OpenAPI document that describes them."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from app.api.openapi import Operation, build_document
from app.integrations.klaviyo import routes as klaviyo
from app.integrations.mailchimp import routes as mailchimp
from app.integrations.outgoing import routes as outgoing
from app.integrations.segment import routes as segment
from app.ledger import routes as ledger
from app.members import routes as members
from app.referrals import routes as referral_routes
from app.rewards import routes as rewards
from app.winback import routes as winback


def _operations() -> list[Operation]:
    return [
        *members.operations,
        *ledger.operations,
        *rewards.operations,
        *klaviyo.operations,
        *winback.operations,
        *referral_routes.operations,
        *outgoing.operations,
        *mailchimp.operations,
        *segment.operations,
    ]


async def openapi_json(request: Request) -> Response:
    return JSONResponse(build_document(_operations(), "1.0.0"))


routes: list[BaseRoute] = [
    Route("/api/v1/openapi.json", openapi_json, methods=["GET"]),
    *members.routes,
    *ledger.routes,
    *rewards.routes,
    *klaviyo.routes,
    *winback.routes,
    *referral_routes.routes,
    *outgoing.routes,
    *mailchimp.routes,
    *segment.routes,
]
