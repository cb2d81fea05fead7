"""Program: every knob as one form, a live preview of a sample order, and version history."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from app.admin import service
from app.admin.edge import AdminContext, Refused, back_to, page
from app.admin.repository import AdminRepository
from app.program.config import (
    EarningBasis,
    EarningTrigger,
    ExpiryMode,
    Participation,
    ProgramConfig,
    RewardKind,
    RiskPolicy,
    TierBasis,
    TierDowngrade,
    TierWindow,
)
from app.program.service import current_config, save_program

HISTORY = 20
CHOICES = {
    "participation": [p.value for p in Participation],
    "earning.basis": [b.value for b in EarningBasis],
    "earning.trigger": [t.value for t in EarningTrigger],
    "expiry.mode": [m.value for m in ExpiryMode],
    "tiers.basis": [b.value for b in TierBasis],
    "tiers.window": [w.value for w in TierWindow],
    "tiers.downgrade": [d.value for d in TierDowngrade],
    "referral.friend_discount_kind": [RewardKind.percentage.value, RewardKind.fixed_amount.value],
    "referral.risk_policy": [p.value for p in RiskPolicy],
    "reward_kind": [k.value for k in RewardKind],
}


async def _render(
    ctx: AdminContext,
    config: ProgramConfig,
    values: dict[str, str],
    errors: dict[str, str],
    status_code: int = 200,
    preview_config: ProgramConfig | None = None,
) -> Response:
    shown = preview_config or config
    amount = service.sample_amount(values.get(service.PREVIEW_FIELD), shown)
    values = {**values, service.PREVIEW_FIELD: str(amount)}
    lines = service.preview(shown, amount)
    versions = await AdminRepository(ctx.session).versions(ctx.shop.id, HISTORY)
    history = [
        (
            version,
            service.changes(
                versions[index + 1].config if index + 1 < len(versions) else None, version.config
            )
            if index + 1 < len(versions) or version.version == 1
            else ["(earlier changes not shown)"],
        )
        for index, version in enumerate(versions[:HISTORY])
    ]
    reward_rows = max(service.row_count(values, "rewards"), len(config.rewards)) + 1
    tier_rows = max(service.row_count(values, "tiers.levels"), len(config.tiers.levels)) + 1
    return ctx.render(
        "program.html",
        status_code=status_code,
        values=values,
        errors=errors,
        choices=CHOICES,
        currency=config.currency,
        reward_rows=reward_rows,
        tier_rows=tier_rows,
        amount=amount,
        preview=lines,
        summary=service.preview_summary(shown, amount, lines),
        history=history,
    )


async def show(ctx: AdminContext) -> Response:
    config = await current_config(ctx.session, ctx.shop)
    if ctx.request.query_params.get("saved"):
        ctx.notices.append("Program saved")
    return await _render(ctx, config, service.flatten(config), {})


async def save(ctx: AdminContext) -> Response:
    """Save the form as a new version; bad fields are named next to the field, nothing saved."""
    assert ctx.form is not None
    current = await current_config(ctx.session, ctx.shop)
    submitted = service.parse_program(service.form_values(ctx.form.multi_items()), current)
    if submitted.config is None:
        raise Refused(await _render(ctx, current, submitted.values, submitted.errors, 422))
    if ctx.field("action") == "preview":
        return await _render(ctx, current, submitted.values, {}, preview_config=submitted.config)
    if submitted.config == current:
        ctx.notices.append("Nothing changed")
        return await _render(ctx, current, submitted.values, {})
    await save_program(ctx.session, ctx.shop, submitted.config, ctx.actor)
    return back_to(ctx, "/admin/program", saved=1)


async def live_preview(ctx: AdminContext) -> Response:
    """JSON for the live preview: what the sample order would earn under the form as typed."""
    assert ctx.form is not None
    current = await current_config(ctx.session, ctx.shop)
    submitted = service.parse_program(service.form_values(ctx.form.multi_items()), current)
    if submitted.config is None:
        name, message = next(iter(submitted.errors.items()))
        return JSONResponse(
            {
                "error": {"code": "validation_failed", "message": f"{name}: {message}"},
                "errors": submitted.errors,
            },
            status_code=422,
        )
    config = submitted.config
    amount = service.sample_amount(ctx.field(service.PREVIEW_FIELD), config)
    lines = service.preview(config, amount)
    return JSONResponse(
        {
            "amount": str(amount),
            "currency": config.currency,
            "points": lines[0].points,
            "tiers": [
                {"name": line.tier, "multiplier": str(line.multiplier), "points": line.points}
                for line in lines[1:]
            ],
            "summary": service.preview_summary(config, amount, lines),
        },
        headers={"Cache-Control": "private, no-store"},
    )


routes: list[BaseRoute] = [
    Route("/admin/program", page(show), methods=["GET"]),
    Route("/admin/program", page(save), methods=["POST"]),
    Route("/admin/program/preview", page(live_preview, json=True), methods=["POST"]),
]
