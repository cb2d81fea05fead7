"""Posting to the ledger: the only way points move.

Each posting is an append-only entry under a per-shop idempotency key plus an atomic
update of the member's cached balances, in the caller's transaction. A repeated key is
a no-op, so every effect of a webhook, job or API call can safely run twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import AppError, Conflict
from app.ledger import outbox
from app.ledger.repository import BalanceDelta, LedgerRepository, lifetime_delta
from app.models import EntryStatus, LedgerEntry, Member, Shop
from app.models.base import utcnow
from app.program.config import Tier
from app.rollups import service as rollups


class InsufficientPoints(Conflict):
    code = "insufficient_points"


@dataclass(slots=True)
class Posting:
    member_id: int
    points: int
    kind: str
    idempotency_key: str
    status: str = EntryStatus.available
    source_type: str | None = None
    source_id: str | None = None
    program_version_id: int | None = None
    amount: Decimal | None = None
    currency: str | None = None
    reason: str | None = None
    actor: str | None = None
    available_at: datetime | None = None
    expires_at: datetime | None = None
    created_at: datetime = field(default_factory=utcnow)


def balance_delta(kind: str, status: str, points: int) -> BalanceDelta:
    """How an entry of this kind and status moves the member's cached balances."""
    if status == EntryStatus.pending:
        return BalanceDelta(pending=points)
    if status == EntryStatus.available:
        return BalanceDelta(available=points, lifetime=lifetime_delta(kind, points))
    return BalanceDelta()


async def post(session: AsyncSession, shop_id: int, posting: Posting) -> int | None:
    """Append the entry and move the balance; None (and no change) if the key was seen."""
    values: dict[str, Any] = {
        "shop_id": shop_id,
        "member_id": posting.member_id,
        "points": posting.points,
        "kind": posting.kind,
        "status": posting.status,
        "idempotency_key": posting.idempotency_key,
        "source_type": posting.source_type,
        "source_id": posting.source_id,
        "program_version_id": posting.program_version_id,
        "amount": posting.amount,
        "currency": posting.currency,
        "reason": posting.reason,
        "actor": posting.actor,
        "available_at": posting.available_at,
        "expires_at": posting.expires_at,
        "created_at": posting.created_at,
    }
    repo = LedgerRepository(session)
    entry_id = await repo.append(values)
    if entry_id is None:
        return None
    delta = balance_delta(posting.kind, posting.status, posting.points)
    await repo.move_balance(posting.member_id, delta)
    await rollups.record_entry(
        session,
        shop_id,
        posting.member_id,
        posting.created_at,
        posting.kind,
        posting.status,
        posting.points,
    )
    if posting.points > 0 and posting.kind in outbox.EARNING_KINDS:
        await outbox.record(
            session,
            shop_id,
            posting.member_id,
            outbox.POINTS_EARNED,
            posting.idempotency_key,
            outbox.points_earned(
                posting.points,
                posting.kind,
                posting.status,
                posting.reason,
                posting.source_type,
                posting.source_id,
            ),
            posting.created_at,
        )
    return entry_id


async def spend(session: AsyncSession, shop_id: int, posting: Posting) -> int | None:
    """Spend points: never below zero, never twice for one key, atomic under concurrency."""
    if posting.points >= 0:
        raise ValueError("a spend posting carries negative points")
    repo = LedgerRepository(session)
    entry_id = await repo.append(
        {
            "shop_id": shop_id,
            "member_id": posting.member_id,
            "points": posting.points,
            "kind": posting.kind,
            "status": EntryStatus.available,
            "idempotency_key": posting.idempotency_key,
            "source_type": posting.source_type,
            "source_id": posting.source_id,
            "reason": posting.reason,
            "actor": posting.actor,
            "created_at": posting.created_at,
        }
    )
    if entry_id is None:
        return None
    if not await repo.spend(posting.member_id, -posting.points):
        raise InsufficientPoints(f"The balance does not cover {-posting.points} points")
    await rollups.record_entry(
        session,
        shop_id,
        posting.member_id,
        posting.created_at,
        posting.kind,
        EntryStatus.available,
        posting.points,
    )
    await outbox.record(
        session,
        shop_id,
        posting.member_id,
        outbox.POINTS_SPENT,
        posting.idempotency_key,
        {
            "points": -posting.points,
            "kind": posting.kind,
            "reason": posting.reason,
            "source_type": posting.source_type,
            "source_id": posting.source_id,
        },
        posting.created_at,
    )
    return entry_id


async def release(session: AsyncSession, entry: LedgerEntry) -> bool:
    """Pending → available: the points become spendable and count towards tiers."""
    repo = LedgerRepository(session)
    if not await repo.set_status(entry.id, EntryStatus.pending, EntryStatus.available):
        return False
    await repo.move_balance(
        entry.member_id,
        BalanceDelta(
            available=entry.points,
            pending=-entry.points,
            lifetime=lifetime_delta(entry.kind, entry.points),
        ),
    )
    return True


async def cancel_pending(session: AsyncSession, entry: LedgerEntry) -> bool:
    """Pending → cancelled (e.g. refunded inside the return window): the points never land."""
    repo = LedgerRepository(session)
    if not await repo.set_status(entry.id, EntryStatus.pending, EntryStatus.cancelled):
        return False
    await repo.move_balance(entry.member_id, BalanceDelta(pending=-entry.points))
    await rollups.record_cancel(
        session, entry.shop_id, entry.member_id, entry.created_at, entry.kind, entry.points
    )
    return True


async def award_tier_entry(
    session: AsyncSession, shop_id: int, member_id: int, tier: Tier, version_id: int | None
) -> int | None:
    """The tier's entry reward, the first time a member reaches it (never twice)."""
    if tier.entry_reward <= 0:
        return None
    return await post(
        session,
        shop_id,
        Posting(
            member_id=member_id,
            points=tier.entry_reward,
            kind="earn",
            idempotency_key=f"tier-entry:{member_id}:{tier.name}",
            source_type="tier",
            source_id=tier.name,
            program_version_id=version_id,
            reason=f"Reached {tier.name}",
        ),
    )


async def adjust(
    session: AsyncSession,
    shop: Shop,
    member: Member,
    points: int,
    *,
    reason: str,
    actor: str,
    idempotency_key: str,
) -> int | None:
    """A manual correction with a reason and who made it. Deductions cannot overdraw."""
    if points == 0:
        raise AppError("An adjustment must change the balance", code="zero_adjustment")
    posting = Posting(
        member_id=member.id,
        points=points,
        kind="adjust",
        idempotency_key=f"adjust:{idempotency_key}",
        source_type="adjustment",
        reason=reason,
        actor=actor,
    )
    if points < 0:
        return await spend(session, shop.id, posting)
    return await post(session, shop.id, posting)
