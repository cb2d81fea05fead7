"""Member events for integrations, written in the caller's transaction (an outbox).

Names are the ones merchants see in Klaviyo and outgoing webhooks; `unique_id` is
derived from the ledger's own idempotency key, so a replayed cause records nothing new.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import insert_ignoring_conflicts, insert_rows_ignoring_conflicts
from app.models import Base, MemberEvent
from app.models.base import utcnow

POINTS_EARNED = "Stamp Points Earned"
REWARD_REDEEMED = "Stamp Reward Redeemed"
TIER_CHANGED = "Stamp Tier Changed"
POINTS_EXPIRING_SOON = "Stamp Points Expiring Soon"
REFERRAL_COMPLETED = "Stamp Referral Completed"
WINBACK_FLAGGED = "Stamp Win-back Flagged"
MEMBER_CREATED = "Stamp Member Joined"
POINTS_SPENT = "Stamp Points Spent"

# The names outgoing webhooks (Zapier, Make) subscribe to, for each event above.
WEBHOOK_TYPES: dict[str, str] = {
    MEMBER_CREATED: "member.created",
    POINTS_EARNED: "points.earned",
    POINTS_SPENT: "points.spent",
    REWARD_REDEEMED: "reward.redeemed",
    TIER_CHANGED: "tier.changed",
    REFERRAL_COMPLETED: "referral.completed",
    POINTS_EXPIRING_SOON: "points.expiring",
    WINBACK_FLAGGED: "member.winback_flagged",
}

EARNING_KINDS = frozenset({"earn", "signup", "birthday", "review", "referral", "custom"})


def member_joined(
    member_id: int, customer_id: str | None, is_account: bool
) -> tuple[str, dict[str, Any]]:
    """`member.created`: its unique id and properties (one per member, ever)."""
    return f"member:{member_id}:created", {"customer_id": customer_id, "is_account": is_account}


def points_earned(
    points: int,
    kind: str,
    status: str,
    reason: str | None,
    source_type: str | None,
    source_id: str | None,
) -> dict[str, Any]:
    """`points.earned` properties (its unique id is the entry's idempotency key)."""
    return {
        "points": points,
        "kind": kind,
        "status": status,
        "reason": reason,
        "source_type": source_type,
        "source_id": source_id,
    }


async def record(
    session: AsyncSession,
    shop_id: int,
    member_id: int,
    name: str,
    unique_id: str,
    properties: dict[str, Any],
    occurred_at: datetime | None = None,
) -> bool:
    """Record the event once; False when this unique id was recorded before."""
    # Core INSERT: recorded on every earning, keep it cheap.
    table = Base.metadata.tables[MemberEvent.__tablename__]
    statement = insert_ignoring_conflicts(session, table, ("shop_id", "unique_id"))
    values = {
        "shop_id": shop_id,
        "member_id": member_id,
        "name": name,
        "unique_id": unique_id,
        "properties": properties,
        "occurred_at": occurred_at or utcnow(),
        "created_at": utcnow(),
    }
    return (await session.execute(statement, values)).scalar_one_or_none() is not None


async def record_many(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """`record` for many events at once (keys: those of `record`'s parameters), in unique id
    order; an event whose unique id was recorded before is skipped, as there."""
    if not rows:
        return
    table = Base.metadata.tables[MemberEvent.__tablename__]
    now = utcnow()
    await insert_rows_ignoring_conflicts(
        session,
        table,
        sorted(
            ({"occurred_at": now, "created_at": now} | row for row in rows),
            key=lambda row: str(row["unique_id"]),
        ),
        ("shop_id", "unique_id"),
        ("id",),
    )
