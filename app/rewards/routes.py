"""Headless API: the reward catalog and redemptions."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.api.auth import api_shop
from app.api.edge import ApiContext, ApiResult, body_sha256, endpoint, parse_body
from app.api.openapi import Operation
from app.db import unit_of_work
from app.members import service as members
from app.models import Redemption
from app.program.service import current_config
from app.rewards import service
from app.rewards.schemas import RedemptionIn, RedemptionOut, RewardList, RewardOut, RewardQuery
from app.state import get_state


def redemption_out(redemption: Redemption) -> RedemptionOut:
    return RedemptionOut(
        id=redemption.id,
        code=redemption.code,
        reward_id=redemption.reward_id,
        points_spent=redemption.points_spent,
        value=redemption.value,
        currency=redemption.currency,
        status=redemption.status,
        expires_at=redemption.expires_at,
    )


async def list_rewards(ctx: ApiContext) -> ApiResult:
    """The shop's rewards; with `customer_id`, whether that member can redeem each now."""
    query = ctx.query(RewardQuery)
    member = (
        await members.get_member(ctx.session, ctx.shop, query.customer_id)
        if query.customer_id
        else None
    )
    views = service.catalog(await current_config(ctx.session, ctx.shop), member)
    return RewardList(
        data=[
            RewardOut(
                id=view.id,
                name=view.name,
                kind=view.kind,
                points_cost=view.points_cost,
                value=view.value,
                max_value=view.max_value,
                affordable=view.affordable if member else None,
                locked_reason=view.locked_reason,
            )
            for view in views
        ]
    )


async def create_redemption(request: Request) -> Response:
    """Spend points on a reward and get a single-use code for that customer.

    Two transactions around the platform call: the spend commits first, so no database
    lock is held while Shopify answers; a refusal returns the points (502 discount_failed).
    """
    state = get_state(request)
    raw = await request.body()
    body = parse_body(raw, RedemptionIn)
    async with unit_of_work(state.sessionmaker) as session:
        shop = await api_shop(request, session)
        member = await members.get_member(session, shop, body.customer_id)
        redemption = await service.start(
            session,
            shop,
            member,
            body.reward_id,
            request_key=f"api:{body.idempotency_key}",
            request_sha256=body_sha256(raw),
            points=body.points,
        )
        redemption_id = redemption.id
    issued = await service.issue(state, redemption_id)
    return JSONResponse(redemption_out(issued).model_dump(mode="json"), status_code=201)


routes = [
    Route("/api/v1/rewards", endpoint(list_rewards), methods=["GET"]),
    Route("/api/v1/redemptions", create_redemption, methods=["POST"]),
]

operations = [
    Operation(
        "GET",
        "/api/v1/rewards",
        "List rewards",
        list_rewards,
        query=RewardQuery,
        response=RewardList,
    ),
    Operation(
        "POST",
        "/api/v1/redemptions",
        "Redeem a reward",
        create_redemption,
        body=RedemptionIn,
        response=RedemptionOut,
        status_code=201,
        errors=(400, 401, 404, 409, 422, 502),
    ),
]
