"""Win-back per shop: fit the shop's model, scan its members, record what changed.

The job bodies take the caller's session and an explicit `now` and only flush, like
`app.ledger.periodic`: `run_for_all_shops` owns one transaction per shop. A scan that runs
twice on the same day writes nothing new: status changes are recorded only when the status
differs, and the outbox event and the bonus carry per-day idempotency keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.ledger import outbox
from app.models import EntryKind, Member, Order, Shop
from app.models.winback import WinbackModel, WinbackState, WinbackStatusChange
from app.winback import models

BATCH_SIZE = 500
REFIT_AFTER = timedelta(days=7)
Progress = Callable[[int, int], None]


def _day(moment: datetime) -> int:
    return moment.astimezone(UTC).date().toordinal()


@lru_cache(maxsize=8192)
def _at(day: int) -> datetime:
    """Midnight UTC of an ordinal day; cached: a shop's members share a few hundred days."""
    return datetime.combine(date.fromordinal(day), time(), tzinfo=UTC)


async def order_days(
    session: AsyncSession, shop_id: int, now: datetime
) -> tuple[models.IntArray, models.IntArray]:
    """(member id, UTC day) of every real order up to `now`: no tests, no cancellations."""
    result = await session.execute(
        select(Order.member_id, Order.placed_at).where(
            Order.shop_id == shop_id,
            Order.member_id.is_not(None),
            Order.is_test.is_(False),
            Order.cancelled_at.is_(None),
            Order.placed_at.is_not(None),
            Order.placed_at <= now,
        )
    )
    rows = [(int(member), _day(placed)) for member, placed in result if member and placed]
    members = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    days = np.fromiter((row[1] for row in rows), dtype=np.int64, count=len(rows))
    return members, days


async def fit_shop(session: AsyncSession, shop: Shop, now: datetime) -> WinbackModel:
    """Fit the shop's model on its own orders and store it (one row per shop)."""
    members, days = await order_days(session, shop.id, now)
    found = models.history(members, days, _day(now))
    del members, days
    return await _store_fit(session, shop, models.fit_history(found, _day(now)), now)


async def _store_fit(
    session: AsyncSession, shop: Shop, fitted: models.ShopModel, now: datetime
) -> WinbackModel:
    row = await session.scalar(select(WinbackModel).where(WinbackModel.shop_id == shop.id))
    if row is None:
        row = WinbackModel(shop_id=shop.id, incentive=None)
        session.add(row)
    row.chosen = fitted.chosen
    row.tau_days = fitted.tau_days
    row.model = fitted.as_json()
    row.fitted_at = now
    await session.flush()
    return row


async def fit_job(session: AsyncSession, shop: Shop, now: datetime) -> int:
    """`run_for_all_shops` body: refit; returns the number of customers fitted on."""
    row = await fit_shop(session, shop, now)
    return int(row.model["n_customers"])


def reasons_for(
    orders: int, usual_gap: float, since_last: float, one_time_gap: float, points: int
) -> list[str]:
    """Plain words a merchant can paste into an email brief."""
    if orders > 1:
        words = [
            f"usually orders every {round(usual_gap)} days; last order {round(since_last)} days ago"
        ]
    else:
        words = [
            f"one order so far, {round(since_last)} days ago; repeat customers here usually "
            f"order again within {round(one_time_gap)} days"
        ]
    if points > 0:
        words.append(f"{points} points unspent")
    return words


def holdout_arm(shop_id: int, member_id: int, share: float) -> str:
    """A stable coin flip per member: the same member always lands in the same arm."""
    digest = hashlib.sha256(f"winback-holdout:{shop_id}:{member_id}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return "holdout" if fraction < share else "treated"


class Scored(NamedTuple):
    """One member's scan result; a tuple because a frozen dataclass costs ~3x to build."""

    member_id: int
    status: str
    score: float
    orders: int
    last_order_at: datetime
    expected_next_order_at: datetime
    usual_gap: float
    since_last: float


@dataclass(frozen=True, slots=True)
class ScoredMembers:
    """Every scored member as columns; Python records are built one write batch at a time.

    A million `Scored` records cost ~10 s and ~500 MB; the columns cost ~60 MB.
    """

    member_id: models.IntArray
    status: NDArray[np.int8]  # index into models.STATUSES
    score: models.FloatArray  # rounded to 4 places, as stored
    orders: models.IntArray
    last_day: models.IntArray
    next_day: models.IntArray
    usual_gap: models.FloatArray
    since_last: models.FloatArray

    def __len__(self) -> int:
        return int(self.member_id.shape[0])

    def records(self, start: int, stop: int) -> list[Scored]:
        """Members start..stop as records, for one batch of writes."""
        part = slice(start, stop)
        columns = zip(
            self.member_id[part].tolist(),
            self.status[part].tolist(),
            self.score[part].tolist(),
            self.orders[part].tolist(),
            self.last_day[part].tolist(),
            self.next_day[part].tolist(),
            self.usual_gap[part].tolist(),
            self.since_last[part].tolist(),
            strict=True,
        )
        return [
            Scored(member, models.STATUSES[status], score, orders, _at(last), _at(after), gap, ago)
            for member, status, score, orders, last, after, gap, ago in columns
        ]

    def status_counts(self) -> dict[str, int]:
        counts = np.bincount(self.status, minlength=len(models.STATUSES))
        return {name: int(count) for name, count in zip(models.STATUSES, counts, strict=True)}


def score_members(
    fitted: models.ShopModel, members: models.IntArray, days: models.IntArray, today: int
) -> ScoredMembers:
    """Every member with an order: status, score, expected next order (pure, no I/O)."""
    return score_history(fitted, models.history(members, days, today), today)


def score_history(fitted: models.ShopModel, found: models.History, today: int) -> ScoredMembers:
    """`score_members` on orders already sorted into a `History` (the scan's refit days)."""
    who, rfm, last = found.at(today)
    ids = found.ids if who.size == found.ids.size else found.ids[who]
    scores = fitted.score(rfm)
    statuses = models.status_codes(rfm.x, scores)
    np.round(scores, 4, out=scores)
    if fitted.bg is not None:
        gap = models.expected_gap(fitted.bg, rfm)
    else:  # the customer's own mean gap, shrunk toward the shop's cycle by one pseudo-gap
        gap = (rfm.t_x + fitted.cycle_days) / (rfm.x + 1)
    next_day = np.rint(gap).astype(np.int64)
    del gap
    np.maximum(next_day, 1, out=next_day)
    next_day += last
    usual = rfm.t_x / np.maximum(rfm.x, 1)
    usual[rfm.x == 0] = fitted.one_time_gap_days
    orders = rfm.x.astype(np.int64)
    orders += 1
    return ScoredMembers(ids, statuses, scores, orders, last, next_day, usual, rfm.since_last)


def _is_stale(row: WinbackModel, now: datetime) -> bool:
    return row.fitted_at < now - REFIT_AFTER


async def _model_for(session: AsyncSession, shop: Shop, now: datetime) -> WinbackModel:
    row = await session.scalar(select(WinbackModel).where(WinbackModel.shop_id == shop.id))
    if row is None or _is_stale(row, now):
        row = await fit_shop(session, shop, now)
    return row


async def scan_shop(
    session: AsyncSession, shop: Shop, now: datetime, progress: Progress | None = None
) -> int:
    """Give every member with an order a status; returns how many members became at risk.

    The orders are read and sorted once: a stale model is refitted on the same `History`
    the members are then scored on.
    """
    members, days = await order_days(session, shop.id, now)
    today = _day(now)
    found = models.history(members, days, today)
    del members, days
    row = await session.scalar(select(WinbackModel).where(WinbackModel.shop_id == shop.id))
    if row is None or _is_stale(row, now):
        row = await _store_fit(session, shop, models.fit_history(found, today), now)
    fitted = models.ShopModel.from_json(row.model)
    scored = score_history(fitted, found, today)
    del found
    flagged = 0
    for start in range(0, len(scored), BATCH_SIZE):
        batch = scored.records(start, start + BATCH_SIZE)
        flagged += await _apply_batch(session, shop, row, fitted, batch, now)
        if progress is not None:
            progress(start + len(batch), len(scored))
    await session.flush()
    return flagged


async def _apply_batch(
    session: AsyncSession,
    shop: Shop,
    row: WinbackModel,
    fitted: models.ShopModel,
    batch: Sequence[Scored],
    now: datetime,
) -> int:
    ids = [item.member_id for item in batch]
    states = {
        state.member_id: state
        for state in await session.scalars(
            select(WinbackState).where(WinbackState.member_id.in_(ids))
        )
    }
    balances = {
        member_id: int(balance)
        for member_id, balance in await session.execute(
            select(Member.id, Member.points_balance).where(Member.id.in_(ids))
        )
    }
    flagged = 0
    for item in batch:
        points = max(balances.get(item.member_id, 0), 0)
        reasons = reasons_for(
            item.orders, item.usual_gap, item.since_last, fitted.one_time_gap_days, points
        )
        state = states.get(item.member_id)
        previous = state.status if state is not None else None
        if state is None:
            state = WinbackState(shop_id=shop.id, member_id=item.member_id, arm=None)
            session.add(state)
        state.status = item.status
        state.score = item.score
        state.orders = item.orders
        state.last_order_at = item.last_order_at
        state.expected_next_order_at = item.expected_next_order_at
        state.points_at_risk = points
        state.reasons = reasons
        state.scanned_at = now
        if previous == item.status:
            continue
        if item.status == "at_risk":
            state.arm = await _flag(session, shop, row, item, points, reasons, now)
            flagged += 1
        elif item.status == "active":
            state.arm = None
        session.add(
            WinbackStatusChange(
                shop_id=shop.id,
                member_id=item.member_id,
                from_status=previous,
                to_status=item.status,
                score=item.score,
                points_at_risk=points,
                reasons=reasons,
                arm=state.arm,
                at=now,
            )
        )
        member = await session.get(Member, item.member_id)
        if member is not None:
            member.sync_dirty_at = now  # the Klaviyo sweep sends the new status and score
    return flagged


async def _flag(
    session: AsyncSession,
    shop: Shop,
    row: WinbackModel,
    item: Scored,
    points: int,
    reasons: list[str],
    now: datetime,
) -> str | None:
    """Outbox event for Klaviyo, and the shop's incentive unless the member is held out."""
    arm: str | None = None
    incentive = row.incentive or {}
    bonus = int(incentive.get("points", 0)) if incentive.get("kind") == "points" else 0
    if bonus > 0:
        arm = holdout_arm(shop.id, item.member_id, float(incentive.get("holdout_share", 0.2)))
    properties: dict[str, Any] = {
        "status": item.status,
        "score": item.score,
        "reasons": reasons,
        "points_at_risk": points,
        "expected_next_order_at": item.expected_next_order_at.isoformat(),
    }
    if arm is not None:
        properties["incentive"] = {"arm": arm, "bonus_points": bonus if arm == "treated" else 0}
    day = now.date().isoformat()
    await outbox.record(
        session,
        shop.id,
        item.member_id,
        outbox.WINBACK_FLAGGED,
        f"winback:{item.member_id}:at_risk:{day}",
        properties,
        now,
    )
    if arm == "treated":
        from app.ledger import service as ledger

        await ledger.post(
            session,
            shop.id,
            ledger.Posting(
                member_id=item.member_id,
                points=bonus,
                kind=EntryKind.adjust,
                idempotency_key=f"winback:{item.member_id}:{day}:bonus",
                source_type="winback",
                reason="Win-back bonus",
                actor="winback",
                created_at=now,
            ),
        )
    return arm


async def set_incentive(
    session: AsyncSession, shop: Shop, points: int, holdout_share: float, now: datetime
) -> WinbackModel:
    """Turn the automatic bonus on (points > 0) or off (0), with its holdout share."""
    if not 0.0 <= holdout_share < 1.0:
        raise ValueError("holdout share must be in [0, 1)")
    row = await _model_for(session, shop, now)
    row.incentive = (
        {"kind": "points", "points": points, "holdout_share": holdout_share} if points > 0 else None
    )
    await session.flush()
    return row


@dataclass(frozen=True, slots=True)
class ArmReport:
    arm: str
    flagged: int
    won_back: int
    revenue: Decimal

    @property
    def won_back_rate(self) -> float:
        return self.won_back / self.flagged if self.flagged else 0.0


async def incentive_report(
    session: AsyncSession, shop: Shop, since: datetime
) -> dict[str, ArmReport]:
    """Treated vs holdout since `since`: won back (ordered after the flag) and revenue."""
    flags = (
        await session.execute(
            select(WinbackStatusChange.member_id, WinbackStatusChange.arm, WinbackStatusChange.at)
            .where(
                WinbackStatusChange.shop_id == shop.id,
                WinbackStatusChange.to_status == "at_risk",
                WinbackStatusChange.arm.is_not(None),
                WinbackStatusChange.at >= since,
            )
            .order_by(WinbackStatusChange.id)
        )
    ).all()
    first_flag: dict[int, tuple[str, datetime]] = {}
    for member_id, arm, at in flags:
        first_flag.setdefault(member_id, (str(arm), at))
    orders = (
        await session.execute(
            select(Order.member_id, Order.placed_at, Order.total_amount).where(
                Order.shop_id == shop.id,
                Order.member_id.in_(list(first_flag)),
                Order.is_test.is_(False),
                Order.cancelled_at.is_(None),
                Order.placed_at.is_not(None),
            )
        )
    ).all()
    revenue: dict[int, Decimal] = {}
    for owner, placed_at, total in orders:
        if owner is not None and placed_at is not None and placed_at > first_flag[owner][1]:
            revenue[owner] = revenue.get(owner, Decimal(0)) + total
    report: dict[str, ArmReport] = {}
    for arm in ("treated", "holdout"):
        members = [m for m, (a, _) in first_flag.items() if a == arm]
        report[arm] = ArmReport(
            arm,
            len(members),
            sum(1 for m in members if m in revenue),
            sum((revenue.get(m, Decimal(0)) for m in members), Decimal(0)),
        )
    return report
