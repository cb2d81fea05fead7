"""Headless API for the ledger: a member's activity, manual adjustments, custom events."""

from __future__ import annotations

from starlette.routing import Route

from app.api.edge import ApiContext, ApiResult, endpoint
from app.api.idempotency import run_once
from app.api.openapi import Operation
from app.api.pagination import decode_cursor, encode_cursor
from app.errors import NotFound
from app.events import CustomAction
from app.ledger import engine
from app.ledger import service as ledger
from app.ledger.repository import ActivityRepository, LedgerRepository
from app.ledger.schemas import (
    ActivityPage,
    AdjustmentIn,
    AdjustmentOut,
    CustomEventIn,
    CustomEventOut,
    EntryOut,
    PageQuery,
)
from app.members import service as members
from app.models.base import utcnow


async def activity(ctx: ApiContext) -> ApiResult:
    """A member's ledger entries, newest first."""
    query = ctx.query(PageQuery)
    member = await members.get_member(ctx.session, ctx.shop, ctx.request.path_params["customer_id"])
    rows = await ActivityRepository(ctx.session).page(
        member.id, query.limit + 1, decode_cursor("e", query.cursor)
    )
    page, more = rows[: query.limit], len(rows) > query.limit
    return ActivityPage(
        data=[EntryOut.of(entry) for entry in page],
        next_cursor=encode_cursor("e", page[-1].id) if more else None,
    )


async def create_adjustment(ctx: ApiContext) -> ApiResult:
    """Add or remove points by hand, with a reason. A deduction cannot overdraw the balance."""
    body = await ctx.body(AdjustmentIn)
    member = await members.get_member(ctx.session, ctx.shop, ctx.request.path_params["customer_id"])

    async def act() -> tuple[int, dict[str, object]]:
        await ledger.adjust(
            ctx.session,
            ctx.shop,
            member,
            body.points,
            reason=body.reason,
            actor=ctx.actor,
            idempotency_key=body.idempotency_key,
        )
        entry = await LedgerRepository(ctx.session).entry_by_key(
            ctx.shop.id, f"adjust:{body.idempotency_key}"
        )
        assert entry is not None
        await ctx.session.refresh(member)
        out = AdjustmentOut(
            entry=EntryOut.of(entry),
            member=await members.member_out(ctx.session, ctx.shop, member),
        )
        return 201, out.model_dump(mode="json")

    return await run_once(ctx, "adjustments", body.idempotency_key, act)


async def create_event(ctx: ApiContext) -> ApiResult:
    """Reward a custom action defined in the program (e.g. `followed_on_instagram`)."""
    body = await ctx.body(CustomEventIn)

    async def act() -> tuple[int, dict[str, object]]:
        if body.customer_id:
            member = await members.get_member(ctx.session, ctx.shop, body.customer_id)
        else:
            assert body.email is not None
            found = await members.member_for_customer(
                ctx.session, ctx.shop, None, body.email.strip().lower()
            )
            if found.member is None:
                raise NotFound("No member with that email", code="member_not_found")
            member = found.member
        event = CustomAction(
            action=body.event,
            customer_id=member.customer_id,
            email=member.email,
            idempotency_key=body.idempotency_key,
            occurred_at=utcnow(),
        )
        entry = await engine.custom_action(ctx.session, ctx.shop, member, event)
        await ctx.session.refresh(member)
        out = CustomEventOut(
            points_awarded=entry.points,
            entry=EntryOut.of(entry),
            member=await members.member_out(ctx.session, ctx.shop, member),
        )
        return 201, out.model_dump(mode="json")

    return await run_once(ctx, "events", body.idempotency_key, act)


routes = [
    Route("/api/v1/members/{customer_id}/activity", endpoint(activity), methods=["GET"]),
    Route(
        "/api/v1/members/{customer_id}/adjustments",
        endpoint(create_adjustment),
        methods=["POST"],
    ),
    Route("/api/v1/events", endpoint(create_event), methods=["POST"]),
]

operations = [
    Operation(
        "GET",
        "/api/v1/members/{customer_id}/activity",
        "A member's ledger entries, newest first",
        activity,
        path_params=("customer_id",),
        query=PageQuery,
        response=ActivityPage,
    ),
    Operation(
        "POST",
        "/api/v1/members/{customer_id}/adjustments",
        "Adjust a member's points",
        create_adjustment,
        path_params=("customer_id",),
        body=AdjustmentIn,
        response=AdjustmentOut,
        status_code=201,
        errors=(400, 401, 404, 409, 422),
    ),
    Operation(
        "POST",
        "/api/v1/events",
        "Reward a custom action",
        create_event,
        body=CustomEventIn,
        response=CustomEventOut,
        status_code=201,
        errors=(400, 401, 404, 409, 422),
    ),
]
