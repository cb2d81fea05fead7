"""Referral surfaces: the app-proxy link `/proxy/r/{code}` and the headless review queue."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from app.api.edge import ApiContext, ApiResult, endpoint
from app.api.openapi import Operation
from app.api.pagination import ROW_ID, decode_cursor, encode_cursor
from app.db import unit_of_work
from app.errors import AppError
from app.limits.rate import client_address
from app.members import service as members
from app.models import Member
from app.models.referral import Referral
from app.referrals import service
from app.referrals.repository import ReferralRepository
from app.referrals.schemas import DecisionIn, ReferralOut, ReferralPage, ReferralQuery
from app.state import get_state
from widgets.routes import _visitor


async def landing(request: Request) -> Response:
    """A friend opens a referral link: record the click, hand out the welcome code, redirect."""
    state = get_state(request)
    # Shopify's app proxy appends the friend's address; entries left of it are the client's
    # own claims (app/limits/rate.py explains the rule).
    ip = client_address(
        request.client.host if request.client else None,
        request.headers.get("x-forwarded-for"),
        state.settings.TRUSTED_PROXY_HOPS + 1,
    )
    visit = service.Visit(
        code=request.path_params["code"],
        customer_id=request.query_params.get("logged_in_customer_id") or None,
        ip=ip,
        user_agent=request.headers.get("user-agent"),
        device=request.query_params.get("device") or None,
    )
    async with unit_of_work(state.sessionmaker) as session:
        visitor = await _visitor(request, session)
        plan = await service.land(session, visitor.shop, visit)
        shop_id = visitor.shop.id
    code = plan.offer_code if not plan.needs_issue else None
    if plan.needs_issue and plan.offer_id is not None:
        code = await service.issue_offer(state, shop_id, plan.offer_id)
    return RedirectResponse(
        service.storefront_location(plan.ref_code, code),
        status_code=302,
        headers={"Cache-Control": "private, no-store"},
    )


async def _out(ctx: ApiContext, referral: Referral) -> ReferralOut:
    referrer = await ctx.session.get(Member, referral.referrer_member_id)
    friend = await ctx.session.get(Member, referral.friend_member_id)
    return ReferralOut.of(
        referral,
        referrer.customer_id if referrer else None,
        friend.customer_id if friend else None,
    )


async def _page(ctx: ApiContext, referrer_id: int | None) -> ReferralPage:
    query = ctx.query(ReferralQuery)
    rows = await ReferralRepository(ctx.session).page(
        ctx.shop.id, query.status, query.limit + 1, decode_cursor("r", query.cursor), referrer_id
    )
    page = rows[: query.limit]
    return ReferralPage(
        data=[await _out(ctx, referral) for referral in page],
        next_cursor=encode_cursor("r", page[-1].id) if len(rows) > query.limit else None,
    )


async def list_referrals(ctx: ApiContext) -> ApiResult:
    """Referrals, oldest first; `status=held` is the review queue."""
    return await _page(ctx, None)


async def member_referrals(ctx: ApiContext) -> ApiResult:
    """The referrals a member made, oldest first."""
    member = await members.get_member(ctx.session, ctx.shop, ctx.request.path_params["customer_id"])
    return await _page(ctx, member.id)


def _referral_id(ctx: ApiContext) -> int:
    raw = ctx.request.path_params["referral_id"]
    if not ROW_ID.fullmatch(raw):
        raise AppError("A referral id is a number", code="referral_not_found", status_code=404)
    return int(raw)


async def approve(ctx: ApiContext) -> ApiResult:
    """Pay a held referral (pending until its hold window closes)."""
    body = await ctx.body(DecisionIn)
    referral = await service.approve(
        ctx.session, ctx.shop, _referral_id(ctx), actor=ctx.actor, reason=body.reason
    )
    return await _out(ctx, referral)


async def reject(ctx: ApiContext) -> ApiResult:
    """Refuse a held referral, or cancel a still-pending reward."""
    body = await ctx.body(DecisionIn)
    referral = await service.reject(
        ctx.session, ctx.shop, _referral_id(ctx), actor=ctx.actor, reason=body.reason
    )
    return await _out(ctx, referral)


proxy_routes = [Route("/proxy/r/{code}", landing, methods=["GET"])]

routes = [
    Route("/api/v1/referrals", endpoint(list_referrals), methods=["GET"]),
    Route("/api/v1/members/{customer_id}/referrals", endpoint(member_referrals), methods=["GET"]),
    Route("/api/v1/referrals/{referral_id}/approve", endpoint(approve), methods=["POST"]),
    Route("/api/v1/referrals/{referral_id}/reject", endpoint(reject), methods=["POST"]),
]

operations = [
    Operation(
        "GET",
        "/api/v1/referrals",
        "Referrals, oldest first (status=held is the review queue)",
        list_referrals,
        query=ReferralQuery,
        response=ReferralPage,
    ),
    Operation(
        "GET",
        "/api/v1/members/{customer_id}/referrals",
        "The referrals a member made",
        member_referrals,
        path_params=("customer_id",),
        query=ReferralQuery,
        response=ReferralPage,
    ),
    Operation(
        "POST",
        "/api/v1/referrals/{referral_id}/approve",
        "Approve a held referral",
        approve,
        path_params=("referral_id",),
        body=DecisionIn,
        response=ReferralOut,
        errors=(400, 401, 404, 409, 422),
    ),
    Operation(
        "POST",
        "/api/v1/referrals/{referral_id}/reject",
        "Reject a held or pending referral",
        reject,
        path_params=("referral_id",),
        body=DecisionIn,
        response=ReferralOut,
        errors=(400, 401, 404, 409, 422),
    ),
]
