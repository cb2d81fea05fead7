"""Segment message handlers: configured track events become custom earning actions.

Idempotent twice over: the pipeline dedupes on Segment's `messageId`, and the ledger
entry's key is `custom:segment:<messageId>`. A mapped event for a customer Stamp does not
know is dead-lettered (replayable once the member exists); unmapped events and the other
message types are accepted and ignored.
"""

from __future__ import annotations

import logging
from typing import Any

from app.events import CustomAction
from app.integrations.connections import ConnectorRepository
from app.ledger import engine
from app.members.repository import MemberRepository
from app.models import ConnectorKind, Member
from app.models.base import utcnow
from webhooks.pipeline import Handler, HandlerContext

logger = logging.getLogger("stamp.webhooks.segment")


def _email(payload: dict[str, Any]) -> str | None:
    for holder in (payload.get("properties"), payload.get("traits"), payload.get("context")):
        if not isinstance(holder, dict):
            continue
        traits = holder.get("traits") if isinstance(holder.get("traits"), dict) else holder
        email = traits.get("email") if isinstance(traits, dict) else None
        if isinstance(email, str) and "@" in email:
            return email.strip().lower()
    return None


async def _member(ctx: HandlerContext, payload: dict[str, Any]) -> Member | None:
    repo = MemberRepository(ctx.session)
    user_id = payload.get("userId")
    if isinstance(user_id, str | int) and str(user_id).strip():
        found = await repo.by_customer_id(ctx.shop.id, str(user_id).strip())
        if found is not None:
            return found
    email = _email(payload)
    if email:
        known = await repo.by_email(ctx.shop.id, email)
        if known:
            return sorted(known, key=lambda m: (not m.is_account, m.id))[0]
    return None


async def track(ctx: HandlerContext, payload: Any) -> None:
    if not isinstance(payload, dict):
        raise ValueError("expected a JSON object")
    connection = await ConnectorRepository(ctx.session, ConnectorKind.segment).connection(
        ctx.shop.id
    )
    events = dict((connection.settings or {}).get("events") or {}) if connection else {}
    action = events.get(str(payload.get("event") or ""))
    if action is None:
        return
    member = await _member(ctx, payload)
    if member is None:
        raise ValueError(
            f"no member for userId {payload.get('userId')!r} or the email in the message"
        )
    event = CustomAction(
        action=action,
        customer_id=member.customer_id,
        email=member.email,
        idempotency_key=f"segment:{ctx.delivery.delivery_id}",
        occurred_at=utcnow(),
    )
    try:
        await engine.custom_action(ctx.session, ctx.shop, member, event)
    except engine.CustomActionRefused as exc:
        logger.info("Segment %s for member %s not rewarded: %s", action, member.id, exc)


async def ignore(ctx: HandlerContext, payload: Any) -> None:
    return None


HANDLERS: dict[str, Handler] = {
    "track": track,
    "identify": ignore,
    "page": ignore,
    "screen": ignore,
    "group": ignore,
    "alias": ignore,
}
