"""Headless API: read members by platform customer id or by email."""

from __future__ import annotations

from pydantic import BaseModel, Field
from starlette.routing import Route

from app.api.edge import ApiContext, ApiResult, endpoint, render
from app.api.openapi import Operation
from app.events import CustomerInfo
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


class MemberIn(BaseModel):
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    customer_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[\x21-\x7e]+$",
        description="The platform's customer id, when the contact is a store customer",
    )
    first_name: str | None = Field(default=None, max_length=255)
    last_name: str | None = Field(default=None, max_length=255)


async def create_member(ctx: ApiContext) -> ApiResult:
    """Enrol a contact (e.g. a new CRM customer from Zapier): 201 when new, 200 when the
    customer id or email already belongs to a member. No sign-up bonus: that is earned by
    opening a store account."""
    body = await ctx.body(MemberIn)
    email = body.email.strip().lower()
    customer = (
        CustomerInfo(
            customer_id=body.customer_id,
            email=email,
            first_name=body.first_name,
            last_name=body.last_name,
            phone=None,
            is_account=False,
        )
        if body.customer_id
        else None
    )
    repo = MemberRepository(ctx.session)
    known = await repo.by_customer_id(ctx.shop.id, body.customer_id) if body.customer_id else None
    if known is None and body.customer_id is None:
        same_email = await repo.by_email(ctx.shop.id, email)
        known = min(same_email, key=lambda m: (not m.is_account, m.id)) if same_email else None
    if known is not None:  # an existing member is returned as it is, never rewritten
        return await service.member_out(ctx.session, ctx.shop, known)
    match = await service.member_for_customer(ctx.session, ctx.shop, customer, email)
    assert match.member is not None
    out = await service.member_out(ctx.session, ctx.shop, match.member)
    return render(out, 201 if match.created else 200)


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
    Route("/api/v1/members", endpoint(create_member), methods=["POST"]),
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
        "POST",
        "/api/v1/members",
        "Enrol a contact as a member (or get the existing one)",
        create_member,
        body=MemberIn,
        response=MemberOut,
        status_code=201,
        also_succeeds_with=(200,),
        errors=(400, 401, 422),
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
