"""The referral review queue: held referrals, with the reasons, approved or rejected here."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.admin.edge import AdminContext, back_to, page
from app.admin.repository import AdminRepository
from app.errors import NotFound
from app.referrals import service as referrals
from app.referrals.repository import ReferralRepository

QUEUE_LIMIT = 100
MAX_REASON = 500


async def queue(ctx: AdminContext) -> Response:
    held = await ReferralRepository(ctx.session).page(ctx.shop.id, "held", QUEUE_LIMIT, None)
    people = await AdminRepository(ctx.session).members_by_id(
        ctx.shop.id, {r.referrer_member_id for r in held} | {r.friend_member_id for r in held}
    )
    done = ctx.request.query_params.get("done")
    if done in ("approved", "rejected"):
        ctx.notices.append(f"Referral {done}")
    return ctx.render("referrals.html", held=held, people=people, limit=QUEUE_LIMIT)


def _referral_id(ctx: AdminContext) -> int:
    raw = ctx.request.path_params["referral_id"]
    if not raw.isdigit():
        raise NotFound(f"No referral {raw}", code="referral_not_found")
    return int(raw)


async def decide(ctx: AdminContext) -> Response:
    """Approve (pay, pending until the hold window closes) or reject a held referral."""
    decision = ctx.request.path_params["decision"]
    if decision not in ("approve", "reject"):
        raise NotFound("Referrals are approved or rejected", code="not_found")
    reason = ctx.field("reason").strip()[:MAX_REASON] or f"{decision} in the admin"
    if decision == "approve":
        await referrals.approve(
            ctx.session, ctx.shop, _referral_id(ctx), actor=ctx.actor, reason=reason
        )
        return back_to(ctx, "/admin/referrals", done="approved")
    await referrals.reject(ctx.session, ctx.shop, _referral_id(ctx), actor=ctx.actor, reason=reason)
    return back_to(ctx, "/admin/referrals", done="rejected")


routes: list[BaseRoute] = [
    Route("/admin/referrals", page(queue), methods=["GET"]),
    Route("/admin/referrals/{referral_id}/{decision:str}", page(decide), methods=["POST"]),
]
