"""The program's arithmetic, as pure functions: no I/O, no database, no clock.

The engine feeds these domain events, stored entries and a `now`, and writes what they
return to the ledger. Keeping them pure makes every rounding and date rule testable alone.

Rounding (design.md, "Decisions and conventions"): an order earns
`floor(basis × rate × multiplier)`, computed once; refunds reverse cumulatively with
`round_half_up`, so partial refunds never drift and a full refund reverses exactly what was
earned. Arithmetic is exact (`Fraction`), so no intermediate rounding can move a result.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import NamedTuple

from app.events import OrderLine, OrderPaid
from app.program.config import EarningBasis, ExpiryMode, ProgramConfig, Tier, TierWindow

_ZERO = Decimal(0)

# Entry kinds as stored (`app.models.ledger.EntryKind` values); kept as text so the rules
# stay importable without the ORM.
EARNING_KINDS = frozenset({"earn", "referral", "review", "signup", "birthday", "custom"})
REVERSAL_KIND = "reverse"
ADJUST_KIND = "adjust"
REDEEM_KIND = "redeem"
IMPORT_KIND = "import"


def round_half_up(value: Decimal) -> int:
    """Nearest integer, halves away from zero (2.5 → 3, -2.5 → -3), unlike Python's round."""
    if not value.is_finite():
        raise ValueError(f"cannot round {value}")
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


def _round_half_up_exact(value: Fraction) -> int:
    """`round_half_up` for an exact non-negative ratio."""
    return math.floor(value + Fraction(1, 2))


# --- earning ------------------------------------------------------------------------------


def _is_excluded(line: OrderLine, config: ProgramConfig, excluded_ids: Collection[str]) -> bool:
    earning = config.earning
    return (
        (line.product_id is not None and line.product_id in earning.excluded_product_ids)
        or (line.variant_id is not None and line.variant_id in earning.excluded_variant_ids)
        or (line.product_id is not None and line.product_id in excluded_ids)
        or (line.variant_id is not None and line.variant_id in excluded_ids)
    )


def earning_basis(
    order: OrderPaid, config: ProgramConfig, excluded_ids: Collection[str] = frozenset()
) -> Decimal:
    """The amount an order earns on, in shop money, never negative.

    `merchandise`: goods after discounts (the normaliser already left out shipping, tax,
    tips and gift cards). `total`: the order total, with gift-card purchases taken out
    (points on a gift card and again when it is spent would pay twice).
    Either way, lines whose product or variant is excluded are taken out. Order payloads
    carry no product tags, so the caller resolves `excluded_product_tags` to ids and passes
    them as `excluded_ids` (product or variant ids, one set).
    """
    excluded = sum(
        (
            line.merchandise
            for line in order.lines
            if not line.gift_card and _is_excluded(line, config, excluded_ids)
        ),
        _ZERO,
    )
    if config.earning.basis == EarningBasis.total:
        gift_cards = sum((line.merchandise for line in order.lines if line.gift_card), _ZERO)
        basis = order.total - gift_cards - excluded
    else:
        basis = order.merchandise - excluded
    return max(basis, _ZERO)


def order_earning(
    order: OrderPaid,
    config: ProgramConfig,
    multiplier: Decimal,
    excluded_ids: Collection[str] = frozenset(),
) -> int | None:
    """Points for an order, or None when it does not qualify.

    Not qualifying: a test order (unless the program counts them), a cancelled order, an
    order from an excluded sales channel (`source_name`, e.g. "pos"), or a basis below the
    minimum order. Participation (guests, accounts only) is the caller's decision.
    """
    if multiplier < 0 or not multiplier.is_finite():
        raise ValueError(f"multiplier must be a finite number >= 0, got {multiplier}")
    earning = config.earning
    if order.is_test and not earning.include_test_orders:
        return None
    if order.cancelled:
        return None
    if order.source_name is not None and order.source_name in earning.excluded_sources:
        return None
    basis = earning_basis(order, config, excluded_ids)
    if basis < earning.minimum_order:
        return None
    return points_for(basis, earning.rate, multiplier)


def points_for(basis: Decimal, rate: Decimal, multiplier: Decimal) -> int:
    """`floor(basis × rate × multiplier)`, exactly, never below 0."""
    product = Fraction(basis) * Fraction(rate) * Fraction(multiplier)
    return max(math.floor(product), 0)


# --- refunds ------------------------------------------------------------------------------


def reversal_for_refund(
    earned: int,
    order_merchandise: Decimal,
    refunded_so_far_before: Decimal,
    refund_amount: Decimal,
    reversed_so_far: int,
) -> int:
    """Points this refund takes back (>= 0), by the cumulative rule.

    After the refund, the order's total reversal becomes
    `round_half_up(earned × min(refunded so far, merchandise) / merchandise)`; this refund
    reverses the difference from what was already reversed. Refunds beyond the merchandise
    (shipping, over-refunds) are capped at it, so the total never exceeds `earned`. An
    order with zero merchandise reverses everything on any refund. If more was already
    reversed (a cancellation), nothing more is.
    """
    if earned < 0 or reversed_so_far < 0:
        raise ValueError("earned and reversed_so_far cannot be negative")
    if refund_amount < 0 or refunded_so_far_before < 0 or order_merchandise < 0:
        raise ValueError("refund amounts and merchandise cannot be negative")
    if order_merchandise == 0:
        target = earned
    else:
        refunded = min(refunded_so_far_before + refund_amount, order_merchandise)
        target = _round_half_up_exact(earned * Fraction(refunded) / Fraction(order_merchandise))
    return max(min(target, earned) - reversed_so_far, 0)


# --- tiers --------------------------------------------------------------------------------


class NextTier(NamedTuple):
    name: str
    points_needed: int


def tier_for(progress: int | Decimal, config: ProgramConfig) -> Tier | None:
    """The highest tier whose threshold `progress` reaches (points or spend in the window).

    None when tiers are off or the lowest threshold is not reached yet.
    """
    if not config.tiers.enabled:
        return None
    reached = [tier for tier in config.tiers.levels if progress >= tier.threshold]
    return reached[-1] if reached else None


def next_tier(progress: int | Decimal, config: ProgramConfig) -> NextTier | None:
    """The next tier up and how much more is needed (rounded up), or None at the top."""
    if not config.tiers.enabled:
        return None
    for tier in config.tiers.levels:
        if progress < tier.threshold:
            return NextTier(tier.name, math.ceil(tier.threshold - progress))
    return None


def tier_multiplier(tier: Tier | None) -> Decimal:
    return tier.multiplier if tier is not None else Decimal(1)


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")


def _years_before(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:  # 29 February in a year without one
        return moment.replace(year=moment.year - years, day=28)


def window_start(window: TierWindow, now: datetime) -> datetime | None:
    """Start of the tier window containing `now`; None for lifetime (no start).

    Calendar years start on 1 January in `now`'s time zone, so pass `now` in the shop's
    zone. The rolling window starts the same instant one year earlier (12 months).
    """
    _require_aware(now)
    if window == TierWindow.lifetime:
        return None
    if window == TierWindow.calendar_year:
        return now.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    return _years_before(now, 1)


@dataclass(frozen=True, slots=True)
class Entry:
    """The parts of a ledger entry the rules need (mirrors `LedgerEntry`)."""

    points: int
    kind: str
    status: str
    created_at: datetime
    available_at: datetime | None = None

    @property
    def effective_at(self) -> datetime:
        """When the points became spendable (release time for formerly pending points)."""
        return self.available_at or self.created_at


def tier_points(entries: Iterable[Entry], start: datetime | None, end: datetime) -> int:
    """Points earned in [start, end): earning entries and positive adjustments minus reversals.

    Only available entries count: pending points do not count towards tiers, cancelled
    ones never did. Never below 0.
    """
    total = 0
    for entry in entries:
        if entry.status != "available":
            continue
        at = entry.effective_at
        if at >= end or (start is not None and at < start):
            continue
        if (
            entry.kind in EARNING_KINDS
            or entry.kind == REVERSAL_KIND
            or (entry.kind == ADJUST_KIND and entry.points > 0)
        ):
            total += entry.points
    return max(total, 0)


# --- pending and expiry -------------------------------------------------------------------


def pending_release_at(awarded_at: datetime, config: ProgramConfig) -> datetime | None:
    """When pending points become spendable; None means no pending period (at once)."""
    _require_aware(awarded_at)
    if config.pending_days == 0:
        return None
    return awarded_at + timedelta(days=config.pending_days)


class ExpiryDates(NamedTuple):
    expires_at: datetime
    warn_at: datetime | None


def _dates(start: datetime, days: int, warning_days: int) -> ExpiryDates:
    expires_at = start + timedelta(days=days)
    warn_at = expires_at - timedelta(days=warning_days) if warning_days else None
    return ExpiryDates(expires_at, warn_at)


def last_activity(entries: Iterable[Entry]) -> datetime | None:
    """The last earn, spend or import: what inactivity expiry counts from.

    A pending earning counts (the shopper ordered, even if the points are still held), and
    so does an imported balance (its import date starts the clock); cancelled ones do not.
    """
    moments = [
        entry.created_at
        for entry in entries
        if entry.status in ("available", "pending")
        and (
            entry.kind in (REDEEM_KIND, IMPORT_KIND)
            or entry.kind in EARNING_KINDS
            or (entry.kind == ADJUST_KIND and entry.points > 0)
        )
    ]
    return max(moments, default=None)


def inactivity_expiry(last_active_at: datetime | None, config: ProgramConfig) -> ExpiryDates | None:
    """When the whole balance lapses under inactivity expiry, and when to warn."""
    expiry = config.expiry
    if expiry.mode != ExpiryMode.inactivity or expiry.days is None or last_active_at is None:
        return None
    _require_aware(last_active_at)
    return _dates(last_active_at, expiry.days, expiry.warning_days)


@dataclass(frozen=True, slots=True)
class Lot:
    """What is left of one credit under per-earning expiry."""

    points: int
    earned_at: datetime
    expires_at: datetime
    warn_at: datetime | None


def open_lots(entries: Iterable[Entry], config: ProgramConfig) -> list[Lot]:
    """Per-earning expiry: the unspent remainder of each credit, soonest-expiring first.

    Replays available entries in time order. Each positive entry is a lot expiring `days`
    after it became available. Each negative entry (spend, reversal, expiry, negative
    adjustment) consumes the soonest-expiring lots that exist at its time; what it cannot
    cover is a debt that later credits pay back first (reversals may leave a member in
    debt). Empty unless the program uses per-earning expiry.
    """
    expiry = config.expiry
    if expiry.mode != ExpiryMode.per_earning or expiry.days is None:
        return []
    ordered = sorted(
        (entry for entry in entries if entry.status == "available" and entry.points != 0),
        key=lambda entry: (entry.effective_at, entry.points < 0),
    )
    open_: list[Lot] = []  # kept in expiry order; all lots share `days`, so append suffices
    debt = 0
    for entry in ordered:
        if entry.points > 0:
            paid = min(entry.points, debt)
            debt -= paid
            if entry.points > paid:
                when = _dates(entry.effective_at, expiry.days, expiry.warning_days)
                open_.append(
                    Lot(entry.points - paid, entry.effective_at, when.expires_at, when.warn_at)
                )
            continue
        owed = -entry.points
        while owed and open_:
            lot = open_[0]
            used = min(lot.points, owed)
            owed -= used
            if used == lot.points:
                open_.pop(0)
            else:
                open_[0] = replace(lot, points=lot.points - used)
        debt += owed
    return open_


def points_to_expire(entries: Iterable[Entry], config: ProgramConfig, now: datetime) -> int:
    """Points whose lots have reached their expiry by `now` (what the expire job writes)."""
    _require_aware(now)
    return sum(lot.points for lot in open_lots(entries, config) if lot.expires_at <= now)


def lots_to_warn(entries: Iterable[Entry], config: ProgramConfig, now: datetime) -> list[Lot]:
    """Lots inside their warning period: warned about by `now`, not yet expired."""
    _require_aware(now)
    return [
        lot
        for lot in open_lots(entries, config)
        if lot.warn_at is not None and lot.warn_at <= now < lot.expires_at
    ]
