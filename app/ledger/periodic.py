"""Scheduled ledger work: release pending points, expire points, re-tier members, birthdays.

Each job body is a plain async service function for one shop: it takes the caller's
session and an explicit `now` (so tests pass a fixed clock), moves points only through
`app.ledger.service`, and only flushes; the edge (`run_for_all_shops`) owns the
transaction, one per shop. Every posting has an idempotency key, so a job that runs twice
(overlapping workers, a retry after a crash) changes nothing the second time.

Candidates are selected in SQL and walked in keyset batches (`BATCH_SIZE` members at a
time), so a large shop never loads all its members or entries at once.
"""

from __future__ import annotations

import calendar
import logging
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, and_, extract, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import unit_of_work
from app.ledger import outbox, service
from app.ledger.repository import TIER_KINDS
from app.models import EntryKind, EntryStatus, LedgerEntry, Member, ProgramVersion, Shop, ShopStatus
from app.models.base import UTCDateTime
from app.program import rules
from app.program.config import (
    ExpiryMode,
    Participation,
    ProgramConfig,
    TierBasis,
    TierDowngrade,
    default_program,
)
from app.program.service import config_of, current_version
from app.state import State

logger = logging.getLogger(__name__)

BATCH_SIZE = 500

ShopJob = Callable[[AsyncSession, Shop, datetime], Awaitable[int]]


# --- shared helpers ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Program:
    version_id: int | None
    config: ProgramConfig


async def _program(session: AsyncSession, shop: Shop) -> _Program:
    """The shop's current program; a shop without one runs the default (nothing is written)."""
    version: ProgramVersion | None = await current_version(session, shop.id)
    if version is None:
        return _Program(None, default_program(shop.currency))
    return _Program(version.id, config_of(version))


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC)


def _zone(shop: Shop) -> ZoneInfo:
    """The shop's time zone; an unknown name falls back to UTC rather than stalling the shop."""
    try:
        return ZoneInfo(shop.iana_timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        logger.warning("shop %s has an unknown time zone %r", shop.id, shop.iana_timezone)
        return ZoneInfo("UTC")


def _effective_at() -> ColumnElement[datetime]:
    """When an entry's points became spendable: the release time, else the creation time."""
    return func.coalesce(LedgerEntry.available_at, LedgerEntry.created_at, type_=UTCDateTime())


async def _locked_balance(session: AsyncSession, member_id: int) -> int:
    """Lock the member row (PostgreSQL; SQLite serialises writers) and read the live balance.

    Expiry reads the balance before writing a negative entry, so the row is locked first:
    a concurrent redemption waits, and its guarded UPDATE then sees the expired balance.
    """
    balance = await session.scalar(
        select(Member.points_balance).where(Member.id == member_id).with_for_update()
    )
    return int(balance or 0)


# --- tiers --------------------------------------------------------------------------------


def _tier_window_start(config: ProgramConfig, shop: Shop, now: datetime) -> datetime | None:
    """Window start computed in the shop's zone (calendar years begin at local midnight)."""
    return rules.window_start(config.tiers.window, now.astimezone(_zone(shop)))


async def _window_points(
    session: AsyncSession,
    shop: Shop,
    config: ProgramConfig,
    member_ids: Sequence[int],
    now: datetime,
) -> dict[int, int]:
    """Tier points per member in [window start, now], as `rules.tier_points` counts them.

    Earning entries, positive adjustments and reversals that were available at the time,
    dated by when they became available, never below zero. Members with none are absent.
    """
    effective_at = _effective_at()
    conditions = [
        LedgerEntry.shop_id == shop.id,
        LedgerEntry.member_id.in_(member_ids),
        LedgerEntry.status == EntryStatus.available,
        or_(
            LedgerEntry.kind.in_(TIER_KINDS),
            and_(LedgerEntry.kind == EntryKind.adjust, LedgerEntry.points > 0),
        ),
        effective_at <= now,
    ]
    start = _tier_window_start(config, shop, now)
    if start is not None:
        conditions.append(effective_at >= start)
    result = await session.execute(
        select(LedgerEntry.member_id, func.sum(LedgerEntry.points))
        .where(*conditions)
        .group_by(LedgerEntry.member_id)
    )
    return {int(member_id): max(int(total or 0), 0) for member_id, total in result}


async def _retier(
    session: AsyncSession,
    shop: Shop,
    config: ProgramConfig,
    member_ids: Sequence[int],
    now: datetime,
    *,
    downgrade: bool,
) -> int:
    """Set each member's tier from window points; how many changed.

    Upgrades always apply; downgrades only when `downgrade` (the window job), because a
    member keeps a tier until the window says otherwise. A member with no tier and nothing
    earned in the window is left alone, so never-active members are not marked for sync.
    """
    if not member_ids or not config.tiers.enabled or config.tiers.basis is TierBasis.amount_spent:
        return 0
    held_by = await session.execute(
        select(Member.id, Member.tier_name).where(Member.id.in_(member_ids))
    )
    current = {member_id: tier_name for member_id, tier_name in held_by}
    points = await _window_points(session, shop, config, member_ids, now)
    ranks = {level.name: rank for rank, level in enumerate(config.tiers.levels)}
    moves: dict[str | None, list[int]] = defaultdict(list)
    for member_id in member_ids:
        held = current.get(member_id)
        earned = points.get(member_id, 0)
        tier = rules.tier_for(earned, config)
        wanted = tier.name if tier is not None else None
        if wanted == held or (held is None and earned == 0):
            continue
        is_up = wanted is not None and ranks[wanted] > ranks.get(held or "", -1)
        if is_up or downgrade:
            moves[wanted].append(member_id)
    for tier_name, ids in moves.items():
        await session.execute(
            update(Member)
            .where(Member.id.in_(ids))
            .values(tier_name=tier_name, sync_dirty_at=now, updated_at=now)
        )
        lowest = config.tiers.levels[0].name if config.tiers.levels else None
        for member_id in ids:
            held = current.get(member_id)
            if held is None and tier_name == lowest:
                continue  # joining the base tier is not news
            await outbox.record(
                session,
                shop.id,
                member_id,
                outbox.TIER_CHANGED,
                f"tier:{member_id}:{held}->{tier_name}:{now.date().isoformat()}",
                {
                    "from": held,
                    "to": tier_name,
                    "direction": "up"
                    if ranks.get(tier_name or "", -1) > ranks.get(held or "", -1)
                    else "down",
                },
                now,
            )
        level = next((lvl for lvl in config.tiers.levels if lvl.name == tier_name), None)
        if level is not None and level.entry_reward > 0:
            for member_id in ids:
                if ranks[level.name] > ranks.get(current.get(member_id) or "", -1):
                    await service.award_tier_entry(session, shop.id, member_id, level, None)
    return sum(len(ids) for ids in moves.values())


async def reevaluate_tiers(session: AsyncSession, shop: Shop, now: datetime) -> int:
    """Recompute every member's tier from the window, moving members down as well as up.

    Points leave a rolling or calendar window with time alone, so only a scheduled pass can
    move a member down; earning moves them up at once. Returns how many members changed.
    Tiers on amount spent are not handled here (the engine has no spend-in-window sum yet).
    """
    now = _utc(now)
    program = await _program(session, shop)
    tiers = program.config.tiers
    if not tiers.enabled or tiers.basis is TierBasis.amount_spent:
        return 0
    changed = 0
    after = 0
    while True:
        member_ids = list(
            await session.scalars(
                select(Member.id)
                .where(
                    Member.shop_id == shop.id,
                    Member.id > after,
                    Member.redacted_at.is_(None),
                    or_(Member.tier_name.is_not(None), Member.lifetime_points > 0),
                )
                .order_by(Member.id)
                .limit(BATCH_SIZE)
            )
        )
        if not member_ids:
            break
        changed += await _retier(
            session,
            shop,
            program.config,
            member_ids,
            now,
            downgrade=program.config.tiers.downgrade is TierDowngrade.window_end,
        )
        after = member_ids[-1]
    await session.flush()
    return changed


# --- releasing pending points ---------------------------------------------------------------


async def release_due(session: AsyncSession, shop: Shop, now: datetime) -> int:
    """Release every pending entry whose hold has ended; how many were released.

    A member's due entries are released together, negative ones (a partial refund inside
    the return window) first, so `pending_points` never dips below zero on the way. The
    released points then count towards tiers, so members are upgraded if they now qualify.
    """
    now = _utc(now)
    program = await _program(session, shop)
    due = [
        LedgerEntry.shop_id == shop.id,
        LedgerEntry.status == EntryStatus.pending,
        LedgerEntry.available_at <= now,
    ]
    released = 0
    after = 0
    while True:
        member_ids = list(
            await session.scalars(
                select(LedgerEntry.member_id)
                .where(*due, LedgerEntry.member_id > after)
                .group_by(LedgerEntry.member_id)
                .order_by(LedgerEntry.member_id)
                .limit(BATCH_SIZE)
            )
        )
        if not member_ids:
            break
        entries = await session.scalars(
            select(LedgerEntry)
            .where(*due, LedgerEntry.member_id.in_(member_ids))
            .order_by(LedgerEntry.member_id, LedgerEntry.points, LedgerEntry.id)
            .execution_options(populate_existing=True)
        )
        for entry in entries.all():
            if await service.release(session, entry):
                released += 1
        await _retier(session, shop, program.config, member_ids, now, downgrade=False)
        after = member_ids[-1]
    await session.flush()
    # Referral rewards released by this pass complete their referral.
    from app.referrals.service import complete_released

    await complete_released(session, shop, now)
    return released


# --- expiry -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Candidate:
    id: int
    balance: int
    expiring_points: int
    expiring_at: datetime | None


async def _expiry_candidates(session: AsyncSession, shop: Shop, after: int) -> list[_Candidate]:
    """Members with points to expire, or with a warning that may need clearing."""
    result = await session.execute(
        select(Member.id, Member.points_balance, Member.expiring_points, Member.expiring_at)
        .where(
            Member.shop_id == shop.id,
            Member.id > after,
            or_(Member.points_balance > 0, Member.expiring_at.is_not(None)),
        )
        .order_by(Member.id)
        .limit(BATCH_SIZE)
    )
    return [_Candidate(*row) for row in result]


async def _set_warning(
    session: AsyncSession,
    member: _Candidate,
    points: int,
    expires_at: datetime | None,
    now: datetime,
) -> None:
    """Record "N points expire on D" for the Klaviyo sync, writing only when it changes."""
    if (member.expiring_points, member.expiring_at) == (points, expires_at):
        return
    await session.execute(
        update(Member)
        .where(Member.id == member.id)
        .values(expiring_points=points, expiring_at=expires_at, sync_dirty_at=now, updated_at=now)
    )
    if points > 0 and expires_at is not None:
        shop_id = await session.scalar(select(Member.shop_id).where(Member.id == member.id))
        assert shop_id is not None
        await outbox.record(
            session,
            shop_id,
            member.id,
            outbox.POINTS_EXPIRING_SOON,
            f"expiring:{member.id}:{points}:{expires_at.date().isoformat()}",
            {"points": points, "expires_at": expires_at.isoformat()},
            now,
        )


async def _last_activity(
    session: AsyncSession, shop: Shop, member_ids: Sequence[int], now: datetime
) -> dict[int, datetime]:
    """The last earn or spend per member, as `rules.last_activity` defines it, in SQL."""
    result = await session.execute(
        select(LedgerEntry.member_id, func.max(LedgerEntry.created_at))
        .where(
            LedgerEntry.shop_id == shop.id,
            LedgerEntry.member_id.in_(member_ids),
            LedgerEntry.status == EntryStatus.available,
            LedgerEntry.created_at <= now,
            or_(
                LedgerEntry.kind == rules.REDEEM_KIND,
                LedgerEntry.kind.in_(rules.EARNING_KINDS),
                and_(LedgerEntry.kind == rules.ADJUST_KIND, LedgerEntry.points > 0),
            ),
        )
        .group_by(LedgerEntry.member_id)
    )
    return {int(member_id): moment for member_id, moment in result if moment is not None}


async def _expire_inactive(
    session: AsyncSession, shop: Shop, program: _Program, member_id: int, now: datetime
) -> int:
    """Expire the whole positive balance of a lapsed member; the points expired.

    Re-checks under the row lock, so an earn or spend committed meanwhile saves the points.
    The key names the last activity, so a later lapse after new activity expires again.
    """
    balance = await _locked_balance(session, member_id)
    last = (await _last_activity(session, shop, [member_id], now)).get(member_id)
    dates = rules.inactivity_expiry(last, program.config)
    if last is None or dates is None or dates.expires_at > now or balance <= 0:
        return 0
    posted = await service.post(
        session,
        shop.id,
        service.Posting(
            member_id=member_id,
            points=-balance,
            kind=EntryKind.expire,
            idempotency_key=f"expire:{member_id}:{last.date().isoformat()}",
            source_type="expiry",
            program_version_id=program.version_id,
            reason=f"No activity since {last.date().isoformat()}",
            created_at=now,
        ),
    )
    return balance if posted is not None else 0


async def _expire_by_inactivity(
    session: AsyncSession, shop: Shop, program: _Program, now: datetime
) -> int:
    expired = 0
    after = 0
    while members := await _expiry_candidates(session, shop, after):
        last = await _last_activity(session, shop, [member.id for member in members], now)
        for member in members:
            dates = (
                rules.inactivity_expiry(last.get(member.id), program.config)
                if member.balance > 0
                else None
            )
            if dates is not None and dates.expires_at <= now:
                expired += await _expire_inactive(session, shop, program, member.id, now)
                await _set_warning(session, member, 0, None, now)
            elif dates is not None and dates.warn_at is not None and dates.warn_at <= now:
                await _set_warning(session, member, member.balance, dates.expires_at, now)
            else:
                await _set_warning(session, member, 0, None, now)
        after = members[-1].id
    return expired


async def _entries(
    session: AsyncSession, shop: Shop, member_ids: Sequence[int], now: datetime
) -> dict[int, list[tuple[int, rules.Entry]]]:
    """Available entries per member, with their ids, in id order, up to `now`."""
    result = await session.execute(
        select(
            LedgerEntry.id,
            LedgerEntry.member_id,
            LedgerEntry.points,
            LedgerEntry.kind,
            LedgerEntry.status,
            LedgerEntry.created_at,
            LedgerEntry.available_at,
        )
        .where(
            LedgerEntry.shop_id == shop.id,
            LedgerEntry.member_id.in_(member_ids),
            LedgerEntry.status == EntryStatus.available,
        )
        .order_by(LedgerEntry.id)
    )
    by_member: dict[int, list[tuple[int, rules.Entry]]] = defaultdict(list)
    for entry_id, member_id, points, kind, status, created_at, available_at in result:
        entry = rules.Entry(points, kind, status, created_at, available_at)
        if entry.effective_at <= now:
            by_member[member_id].append((entry_id, entry))
    return by_member


def _lot_entry_ids(
    entries: Sequence[tuple[int, rules.Entry]], lots: Sequence[rules.Lot]
) -> list[int]:
    """The credit entry each open lot is what is left of, aligned with `lots`.

    `rules.open_lots` replays entries in (time, credits first) order, stable on id order,
    and always consumes from the front, so the lots still open from credits that share one
    moment are the last of those credits. `Lot` carries no entry id; this recovers it.
    """
    credits: dict[datetime, list[int]] = defaultdict(list)
    for entry_id, entry in entries:
        if entry.points > 0:
            credits[entry.effective_at].append(entry_id)
    open_at = Counter(lot.earned_at for lot in lots)
    seen: Counter[datetime] = Counter()
    ids: list[int] = []
    for lot in lots:
        group = credits[lot.earned_at]
        ids.append(group[len(group) - open_at[lot.earned_at] + seen[lot.earned_at]])
        seen[lot.earned_at] += 1
    return ids


async def _expire_lots(
    session: AsyncSession, shop: Shop, program: _Program, member_id: int, now: datetime
) -> tuple[int, list[tuple[int, rules.Entry]]]:
    """Expire what is left of each lapsed lot, under the row lock; points expired and entries.

    Lots lapse oldest first, and each expiry entry consumes exactly its lot in the replay,
    so a re-run finds nothing lapsed. Never more than the positive balance is expired.
    """
    balance = await _locked_balance(session, member_id)
    entries = (await _entries(session, shop, [member_id], now)).get(member_id, [])
    lots = rules.open_lots([entry for _, entry in entries], program.config)
    expired = 0
    for lot, entry_id in zip(lots, _lot_entry_ids(entries, lots), strict=True):
        take = min(lot.points, balance - expired)
        if lot.expires_at > now or take <= 0:
            break
        posted = await service.post(
            session,
            shop.id,
            service.Posting(
                member_id=member_id,
                points=-take,
                kind=EntryKind.expire,
                idempotency_key=f"expire:lot:{entry_id}",
                source_type="ledger_entry",
                source_id=str(entry_id),
                program_version_id=program.version_id,
                reason=f"Points earned {lot.earned_at.date().isoformat()} expired",
                created_at=now,
            ),
        )
        if posted is not None:
            expired += take
    return expired, entries


async def _expire_per_earning(
    session: AsyncSession, shop: Shop, program: _Program, now: datetime
) -> int:
    expired = 0
    after = 0
    while members := await _expiry_candidates(session, shop, after):
        entries_of = await _entries(session, shop, [member.id for member in members], now)
        for member in members:
            entries = entries_of.get(member.id, [])
            lots = rules.open_lots([entry for _, entry in entries], program.config)
            if member.balance > 0 and any(lot.expires_at <= now for lot in lots):
                points, entries = await _expire_lots(session, shop, program, member.id, now)
                expired += points
            warn = (
                rules.lots_to_warn([entry for _, entry in entries], program.config, now)
                if member.balance > 0
                else []
            )
            if warn:
                soonest = min(lot.expires_at for lot in warn)
                await _set_warning(session, member, sum(lot.points for lot in warn), soonest, now)
            else:
                await _set_warning(session, member, 0, None, now)
        after = members[-1].id
    return expired


async def expire_points(session: AsyncSession, shop: Shop, now: datetime) -> int:
    """Apply the shop's expiry rule at `now`: warn, then expire; the points expired.

    Only the positive available balance expires (pending points and debts are untouched),
    through `service.post` with a negative `expire` entry. The warning fields on the member
    (`expiring_points`, `expiring_at`) are what the Klaviyo sync sends as "expiring soon";
    they clear when the member is active again, the points expire, or expiry is turned off.
    """
    now = _utc(now)
    program = await _program(session, shop)
    mode = program.config.expiry.mode
    if mode is ExpiryMode.inactivity:
        expired = await _expire_by_inactivity(session, shop, program, now)
    elif mode is ExpiryMode.per_earning:
        expired = await _expire_per_earning(session, shop, program, now)
    else:
        expired = 0
        await session.execute(
            update(Member)
            .where(Member.shop_id == shop.id, Member.expiring_at.is_not(None))
            .values(expiring_points=0, expiring_at=None, sync_dirty_at=now, updated_at=now)
        )
    await session.flush()
    return expired


# --- birthdays ----------------------------------------------------------------------------


def _birthday_dates(today: date) -> list[tuple[int, int]]:
    """(month, day) pairs celebrated today; 29 February is kept on the 28th in common years."""
    dates = [(today.month, today.day)]
    if (today.month, today.day) == (2, 28) and not calendar.isleap(today.year):
        dates.append((2, 29))
    return dates


async def birthday_bonuses(session: AsyncSession, shop: Shop, now: datetime) -> int:
    """Give the birthday bonus to members whose birthday is today in the shop's zone.

    Once per member and year (`birthday:<member_id>:<year>`), so hourly runs, retries and a
    birthday edited back to today change nothing. Returns how many bonuses were given.
    """
    now = _utc(now)
    program = await _program(session, shop)
    rule = program.config.birthday
    if not rule.enabled or rule.points <= 0:
        return 0
    today = now.astimezone(_zone(shop)).date()
    is_today = or_(
        *(
            and_(extract("month", Member.birthday) == month, extract("day", Member.birthday) == day)
            for month, day in _birthday_dates(today)
        )
    )
    conditions = [
        Member.shop_id == shop.id,
        Member.birthday.is_not(None),
        Member.redacted_at.is_(None),
        is_today,
    ]
    if program.config.participation is Participation.accounts_only:
        conditions.append(Member.is_account.is_(True))
    given = 0
    after = 0
    while True:
        member_ids = list(
            await session.scalars(
                select(Member.id)
                .where(*conditions, Member.id > after)
                .order_by(Member.id)
                .limit(BATCH_SIZE)
            )
        )
        if not member_ids:
            break
        for member_id in member_ids:
            posted = await service.post(
                session,
                shop.id,
                service.Posting(
                    member_id=member_id,
                    points=rule.points,
                    kind=EntryKind.birthday,
                    idempotency_key=f"birthday:{member_id}:{today.year}",
                    source_type="birthday",
                    source_id=str(today.year),
                    program_version_id=program.version_id,
                    reason=f"Birthday bonus {today.year}",
                    created_at=now,
                ),
            )
            if posted is not None:
                given += 1
        await _retier(session, shop, program.config, member_ids, now, downgrade=False)
        after = member_ids[-1]
    await session.flush()
    return given


# --- every shop ---------------------------------------------------------------------------


@dataclass(slots=True)
class SweepResult:
    """What one run over all shops did: each shop's result, and the shops that failed."""

    results: dict[int, int] = field(default_factory=dict)
    failed: list[int] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.results.values())


async def run_for_all_shops(state: State, fn: ShopJob, now: datetime) -> SweepResult:
    """Run `fn` for each installed shop, one transaction per shop.

    A shop that fails is rolled back, logged and skipped, so one bad shop never blocks
    the others; the next scheduled run tries it again.
    """
    sweep = SweepResult()
    async with state.sessionmaker() as session:
        shop_ids = list(
            await session.scalars(
                select(Shop.id).where(Shop.status == ShopStatus.installed).order_by(Shop.id)
            )
        )
    for shop_id in shop_ids:
        try:
            async with unit_of_work(state.sessionmaker) as session:
                shop = await session.get(Shop, shop_id)
                if shop is not None and shop.status == ShopStatus.installed:
                    sweep.results[shop_id] = await fn(session, shop, now)
        except Exception:
            logger.exception("%s failed for shop %s", getattr(fn, "__name__", fn), shop_id)
            sweep.failed.append(shop_id)
    return sweep
