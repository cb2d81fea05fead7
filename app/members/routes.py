"""Headless API: read members by platform customer id or by email."""

from __future__ import annotations

from pydantic import BaseModel, Field
from starlette.routing import Route

from app.api.edge import ApiContext, ApiResult, endpoint
from app.api.openapi import Operation
from app.members import service
from app.members.repository import MemberRepository
from app.members.schemas import MemberOut


class MemberList(BaseModel):
    data: list[MemberOut]
    next_cursor: str | None = None


class MemberQuery(BaseModel):
    email: str = Field(
        min_length=3,
        max_length=320,
        pattern=r"^[^@\s]+@[^@\s]+$",
        description="Find members by email (case-insensitive)",
    )


async def get_member(ctx: ApiContext) -> ApiResult:
    """One member, by the platform's customer id."""
    customer_id = ctx.request.path_params["customer_id"]
    member = await service.get_member(ctx.session, ctx.shop, customer_id)
    return await service.member_out(ctx.session, ctx.shop, member)


async def find_members(ctx: ApiContext) -> ApiResult:
    """Members with this email (a guest and an account can share one before they merge)."""
    query = ctx.query(MemberQuery)
    members = await MemberRepository(ctx.session).by_email(ctx.shop.id, str(query.email))
    return MemberList(data=[await service.member_out(ctx.session, ctx.shop, m) for m in members])


routes = [
    Route("/api/v1/members", endpoint(find_members), methods=["GET"]),
    Route("/api/v1/members/{customer_id}", endpoint(get_member), methods=["GET"]),
]

operations = [
    Operation(
        "GET",
        "/api/v1/members",
        "Find members by email",
        find_members,
        query=MemberQuery,
        response=MemberList,
    ),
    Operation(
        "GET",
        "/api/v1/members/{customer_id}",
        "Get a member",
        get_member,
        path_params=("customer_id",),
        response=MemberOut,
    ),
]
