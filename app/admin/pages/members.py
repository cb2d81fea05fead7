"""Members: search by email or name, one member's page, and a manual adjustment."""

from __future__ import annotations

import uuid

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.admin.edge import AdminContext, Refused, back_to, page
from app.admin.repository import AdminRepository
from app.errors import NotFound
from app.ledger import service as ledger
from app.ledger.repository import ActivityRepository
from app.members import service as members
from app.models import Member
from app.program.service import current_config
from app.referrals.repository import ReferralRepository

SEARCH_LIMIT = 50
LEDGER_LIMIT = 50
REFERRAL_LIMIT = 50
MAX_ADJUSTMENT = 10_000_000
MAX_REASON = 500


async def search(ctx: AdminContext) -> Response:
    query = ctx.request.query_params.get("q", "")[:200]
    found = await AdminRepository(ctx.session).search_members(ctx.shop.id, query, SEARCH_LIMIT)
    return ctx.render("members.html", query=query, members=found, limit=SEARCH_LIMIT)


async def _member(ctx: AdminContext) -> Member:
    raw = ctx.request.path_params["member_id"]
    member = (
        await AdminRepository(ctx.session).member(ctx.shop.id, int(raw)) if raw.isdigit() else None
    )
    if member is None:
        raise NotFound(f"No member {raw}", code="member_not_found")
    return member


async def _render(
    ctx: AdminContext,
    member: Member,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    config = await current_config(ctx.session, ctx.shop)
    out = await members.member_out(ctx.session, ctx.shop, member, config)
    entries = await ActivityRepository(ctx.session).page(member.id, LEDGER_LIMIT, None)
    referrals = await ReferralRepository(ctx.session).page(
        ctx.shop.id, None, REFERRAL_LIMIT, None, member.id
    )
    friends = await AdminRepository(ctx.session).members_by_id(
        ctx.shop.id, {r.friend_member_id for r in referrals}
    )
    return ctx.render(
        "member.html",
        status_code=status_code,
        member=member,
        out=out,
        entries=entries,
        referrals=referrals,
        friends=friends,
        errors=errors or {},
        values=values or {"points": "", "reason": "", "key": uuid.uuid4().hex},
    )


async def show(ctx: AdminContext) -> Response:
    member = await _member(ctx)
    if ctx.request.query_params.get("adjusted"):
        ctx.notices.append("Points adjusted")
    return await _render(ctx, member)


def _adjustment(points: str, reason: str) -> tuple[int | None, dict[str, str]]:
    errors: dict[str, str] = {}
    value: int | None = None
    try:
        value = int(points.strip())
    except ValueError:
        errors["points"] = "Enter a whole number of points, e.g. 50 or -50"
    else:
        if value == 0:
            errors["points"] = "An adjustment must add or remove points"
        elif abs(value) > MAX_ADJUSTMENT:
            errors["points"] = f"At most {MAX_ADJUSTMENT:,} points at a time"
    if not reason.strip():
        errors["reason"] = "Say why, so the member's history explains the change"
    elif len(reason) > MAX_REASON:
        errors["reason"] = f"At most {MAX_REASON} characters"
    return value, errors


async def adjust(ctx: AdminContext) -> Response:
    """Add or remove points with a reason; a deduction never overdraws the balance."""
    member = await _member(ctx)
    values = {
        "points": ctx.field("points"),
        "reason": ctx.field("reason"),
        "key": ctx.field("key") or uuid.uuid4().hex,
    }
    points, errors = _adjustment(values["points"], values["reason"])
    if points is not None and not errors:
        try:
            await ledger.adjust(
                ctx.session,
                ctx.shop,
                member,
                points,
                reason=values["reason"].strip(),
                actor=ctx.actor,
                idempotency_key=f"admin:{member.id}:{values['key'][:64]}",
            )
        except ledger.InsufficientPoints:
            errors["points"] = f"The balance is {member.points_balance}; it cannot go below 0"
    if errors:
        await ctx.session.refresh(member)
        raise Refused(await _render(ctx, member, errors, values, 422))
    return back_to(ctx, f"/admin/members/{member.id}", adjusted=1)


routes: list[BaseRoute] = [
    Route("/admin/members", page(search), methods=["GET"]),
    Route("/admin/members/{member_id}", page(show), methods=["GET"]),
    Route("/admin/members/{member_id}/adjust", page(adjust), methods=["POST"]),
]
