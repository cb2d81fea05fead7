"""Dead letters: deliveries Stamp verified but could not process, and their replay."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.admin.edge import AdminContext, back_to, page
from app.admin.repository import AdminRepository
from app.errors import AppError, NotFound
from webhooks.handlers import handlers_for
from webhooks.pipeline import replay

LIST_LIMIT = 100
BODY_PREVIEW = 600


async def listing(ctx: AdminContext) -> Response:
    letters = await AdminRepository(ctx.session).open_dead_letters(ctx.shop.id, LIST_LIMIT)
    outcome = ctx.request.query_params.get("replayed")
    if outcome == "processed":
        ctx.notices.append("Replayed: the delivery was processed")
    return ctx.render(
        "dead_letters.html",
        letters=letters,
        preview=lambda body: bytes(body[:BODY_PREVIEW]).decode("utf-8", "replace"),
        failed=ctx.request.query_params.get("error"),
    )


async def replay_letter(ctx: AdminContext) -> Response:
    """Run the payload through its handler again (the pipeline's own replay)."""
    raw = ctx.request.path_params["letter_id"]
    letter = (
        await AdminRepository(ctx.session).dead_letter(ctx.shop.id, int(raw))
        if raw.isdigit()
        else None
    )
    if letter is None or letter.resolved_at is not None:
        raise NotFound(f"No open dead letter {raw}", code="dead_letter_not_found")
    letter_id = letter.id
    # The replay runs its own transactions; end this one first (SQLite has one writer).
    await ctx.session.rollback()
    outcome = await replay(ctx.state, letter_id, handlers_for)
    if outcome.status_code >= 500:
        raise AppError("The database was busy; try again", code="replay_retry", status_code=503)
    if outcome.result == "processed":
        return back_to(ctx, "/admin/dead-letters", replayed="processed")
    return back_to(ctx, "/admin/dead-letters", error=outcome.detail or outcome.result)


routes: list[BaseRoute] = [
    Route("/admin/dead-letters", page(listing), methods=["GET"]),
    Route("/admin/dead-letters/{letter_id}/replay", page(replay_letter), methods=["POST"]),
]
