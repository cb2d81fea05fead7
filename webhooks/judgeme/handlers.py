"""Judge.me topics → review rules. Every topic carries the whole review, and the rules
apply its current state, so all of them share one handler."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.integrations.judgeme.reviews import review_from_payload
from app.integrations.judgeme.service import apply_review
from webhooks.pipeline import Handler, HandlerContext


async def review_changed(ctx: HandlerContext, payload: Any) -> None:
    review = payload.get("review") if isinstance(payload, Mapping) else None
    if not isinstance(review, Mapping):
        raise ValueError("the Judge.me payload has no review object")
    await apply_review(ctx.session, ctx.shop, review_from_payload(review))


HANDLERS: Mapping[str, Handler] = {
    "review/created": review_changed,
    "review/updated": review_changed,
    "review/published": review_changed,
    "review/unpublished": review_changed,
}
