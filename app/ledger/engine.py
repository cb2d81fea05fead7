"""The points engine: apply a domain event to the ledger, in the caller's transaction.

Every effect is idempotent on a business key (`order:<id>:earn`, `refund:<id>:reverse`,
...), so duplicate and out-of-order deliveries, retries and replays change nothing twice.
The order row is locked first (`FOR UPDATE` on PostgreSQL; SQLite serialises writers),
so concurrent deliveries about one order queue up instead of racing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from functools import cache

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import insert_if_absent
from app.errors import AppError
from app.events import (
    CustomAction,
    CustomerCreated,
    CustomerUpdated,
    DomainEvent,
    OrderCancelled,
    OrderPaid,
    OrderRefunded,
)
from app.ledger import service as ledger
from app.ledger.repository import ActivityRepository, LedgerRepository
from app.members import service as members
from app.models import EntryStatus, LedgerEntry, Member, Order, OrderRefund, Shop
from app.models.base import utcnow
from app.program import rules
from app.program.config import EarningTrigger, Participation, ProgramConfig
from app.program.service import config_of, current_program, ensure_default_program
from app.referrals import service as referrals
from app.referrals.service import OrderSignals
from app.rewards import service as rewards


@dataclass(frozen=True, slots=True)
class Program:
    version_id: int
    config: ProgramConfig


async def program_for(session: AsyncSession, shop: Shop) -> Program:
    """The shop's current program version (the default one made if it has none yet)."""
    version_id, config = await current_program(session, shop)
    if version_id is None:
        version = await ensure_default_program(session, shop)
        return Program(version.id, config_of(version))
    return Program(version_id, config)


class OrderOccasion(StrEnum):
    """Why an order event arrived; with the program's trigger it decides whether it earns."""

    created = "created"
    paid = "paid"
    fulfilled = "fulfilled"
    updated = "updated"


PAID_STATUSES = frozenset({"paid", "partially_refunded", "refunded"})


def order_earns_now(event: OrderPaid, occasion: OrderOccasion, config: ProgramConfig) -> bool:
    """`paid` programs earn on orders/paid (or a create that is already paid);
    `fulfilled` programs earn on orders/fulfilled."""
    if config.earning.trigger is EarningTrigger.fulfilled:
        return occasion is OrderOccasion.fulfilled
    return occasion is OrderOccasion.paid or (
        occasion is OrderOccasion.created and event.financial_status in PAID_STATUSES
    )


async def apply(
    session: AsyncSession,
    shop: Shop,
    event: DomainEvent,
    *,
    occasion: OrderOccasion = OrderOccasion.paid,
    signals: OrderSignals | None = None,
) -> None:
    """Apply one event; for orders, `occasion` says which topic brought it and `signals`
    carries what the referral checks need from the raw order (IP, phone, addresses)."""
    if isinstance(event, OrderPaid):
        await order_paid(session, shop, event, occasion=occasion, signals=signals)
    elif isinstance(event, OrderRefunded):
        await order_refunded(session, shop, event)
    elif isinstance(event, OrderCancelled):
        await order_cancelled(session, shop, event)
    elif isinstance(event, CustomerCreated | CustomerUpdated):
        await customer_changed(session, shop, event)
    else:
        raise NotImplementedError(f"no engine rule for {type(event).__name__}")


# --- orders -------------------------------------------------------------------------------


async def _lock_order(session: AsyncSession, shop_id: int, order_id: str) -> Order | None:
    result = await session.execute(
        select(Order)
        .where(Order.shop_id == shop_id, Order.order_id == order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class _Earning:
    """What an order earns, worked out before its row is written (so a new order is
    inserted complete instead of inserted and then updated)."""

    window_points: int
    points: int
    basis: Decimal


async def _plan_earning(
    session: AsyncSession, program: Program, event: OrderPaid, member: Member, new_member: bool
) -> _Earning:
    window_points = (
        0  # a member created just now has no entries yet
        if new_member
        else await LedgerRepository(session).tier_points(member.id, program.config, clamp=False)
    )
    tier = rules.tier_for(max(window_points, 0), program.config)
    points = rules.order_earning(event, program.config, rules.tier_multiplier(tier))
    return _Earning(window_points, points or 0, rules.earning_basis(event, program.config))


async def order_paid(
    session: AsyncSession,
    shop: Shop,
    event: OrderPaid,
    *,
    occasion: OrderOccasion,
    signals: OrderSignals | None = None,
) -> None:
    program = await program_for(session, shop)
    config = program.config
    match = await members.member_for_customer(session, shop, event.customer, event.email)
    member = match.member
    eligible = (
        member is not None
        and not event.cancelled
        and order_earns_now(event, occasion, config)
        and (config.participation is not Participation.accounts_only or member.is_account)
    )
    planned = (
        await _plan_earning(session, program, event, member, match.created)
        if eligible and member is not None
        else None
    )
    # Insert first: a new order (the common case) needs no separate lock; a known one is
    # locked, so concurrent deliveries about it queue up.
    order = await _insert_order(session, shop, event, member, program.version_id, planned)
    if order is None:
        order = await _lock_order(session, shop.id, event.order_id)
        assert order is not None
        planned = None  # the stored order decides, below
    elif planned is not None and member is not None:
        # A new order: it was inserted with its program version and points.
        await _post_earning(session, shop, program, event, member, order, planned)
        planned = None
        eligible = False
    if order.member_id is None and member is not None:
        order.member_id = member.id
    await rewards.mark_codes_used(
        session, shop.id, event.discount_codes, event.order_id, event.placed_at
    )
    if signals is not None and member is not None:
        await referrals.attribute_order(session, shop, event, member, order, signals)
    if not eligible or member is None or order.cancelled_at is not None:
        return
    if order.program_version_id is not None:
        return  # this order earned (or was judged) before
    earning = await _plan_earning(session, program, event, member, new_member=False)
    order.program_version_id = program.version_id
    order.merchandise_amount = earning.basis
    # The order earned nothing for anyone yet: it belongs to the customer it is paid by,
    # also when it was created for another (reversals follow `order.member_id`).
    order.member_id = member.id
    await _post_earning(session, shop, program, event, member, order, earning)


async def _post_earning(
    session: AsyncSession,
    shop: Shop,
    program: Program,
    event: OrderPaid,
    member: Member,
    order: Order,
    earning: _Earning,
) -> None:
    """Post the order's earning, reverse refunds that came first, and move the tier."""
    points = earning.points
    if not points:
        order.points_earned = 0
        await session.flush()
        return
    release_at = rules.pending_release_at(utcnow(), program.config)
    entry_id = await ledger.post(
        session,
        shop.id,
        ledger.Posting(
            member_id=member.id,
            points=points,
            kind="earn",
            idempotency_key=f"order:{event.order_id}:earn",
            status=EntryStatus.pending if release_at else EntryStatus.available,
            source_type="order",
            source_id=event.order_id,
            program_version_id=program.version_id,
            amount=earning.basis,
            currency=event.currency,
            reason=f"Order {event.name or event.order_id}",
            available_at=release_at,
        ),
    )
    if entry_id is None:
        order.points_earned = 0
        await session.flush()
        return
    order.points_earned = points
    await session.flush()
    # Refunds that arrived before the order earned are reversed now.
    reversed_before = order.points_reversed
    await _reconcile_reversal(session, shop, order, f"order:{event.order_id}:early-refunds")
    gained = 0 if release_at else points - (order.points_reversed - reversed_before)
    await members.reevaluate_tier(
        session, member.id, program.config, program.version_id, earning.window_points + gained
    )


async def _insert_order(
    session: AsyncSession,
    shop: Shop,
    event: OrderPaid,
    member: Member | None,
    version_id: int,
    earning: _Earning | None,
) -> Order | None:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING the row: one round trip, no savepoint.

    With `earning`, the row carries the program version, the earning basis and the points
    from the start; `_post_earning` clears the points if the ledger refuses the entry.
    """
    return await insert_if_absent(
        session,
        Order,
        shop_id=shop.id,
        member_id=member.id if member else None,
        order_id=event.order_id,
        name=event.name,
        currency=event.currency,
        merchandise_amount=earning.basis if earning else event.merchandise,
        total_amount=event.total,
        refunded_merchandise=Decimal(0),
        points_earned=earning.points if earning else 0,
        points_reversed=0,
        program_version_id=version_id if earning else None,
        is_test=event.is_test,
        source_name=event.source_name,
        status="open",
        placed_at=event.placed_at,
        created_at=utcnow(),
    )


async def order_refunded(session: AsyncSession, shop: Shop, event: OrderRefunded) -> None:
    if event.merchandise_refunded < 0:
        raise ValueError("a refund's merchandise amount cannot be negative")
    order = await _lock_order(session, shop.id, event.order_id)
    refund = await insert_if_absent(
        session,
        OrderRefund,
        shop_id=shop.id,
        order_id=event.order_id,
        refund_id=event.refund_id,
        merchandise_amount=event.merchandise_refunded,
        refunded_at=event.created_at,
        created_at=utcnow(),
    )
    if refund is None:
        return  # this refund was already recorded
    if order is not None:
        await _reconcile_reversal(session, shop, order, f"refund:{event.refund_id}")
        await referrals.on_order_reversed(session, shop, event.order_id, fully=False)


@cache
def _refunds_of_order() -> Select[Decimal]:
    return select(OrderRefund.merchandise_amount).where(
        OrderRefund.shop_id == bindparam("shop_id"), OrderRefund.order_id == bindparam("order_id")
    )


async def _refunded_total(session: AsyncSession, shop_id: int, order_id: str) -> Decimal:
    result = await session.execute(_refunds_of_order(), {"shop_id": shop_id, "order_id": order_id})
    return sum((amount for amount in result.scalars()), Decimal(0))


async def _reconcile_reversal(
    session: AsyncSession, shop: Shop, order: Order, key_prefix: str
) -> None:
    """Bring the order's total reversal to the cumulative target for all refunds so far."""
    if order.points_earned <= 0 or order.member_id is None:
        return
    refunded = await _refunded_total(session, shop.id, order.order_id)
    if refunded <= 0:
        return
    delta = rules.reversal_for_refund(
        order.points_earned, order.merchandise_amount, Decimal(0), refunded, order.points_reversed
    )
    if delta <= 0:
        return
    await _reverse(session, shop, order, delta, f"{key_prefix}:reverse", "Refund")


async def order_cancelled(session: AsyncSession, shop: Shop, event: OrderCancelled) -> None:
    order = await _lock_order(session, shop.id, event.order_id)
    if order is None or order.cancelled_at is not None:
        if order is None:
            await _record_cancelled_unknown(session, shop, event)
        return
    order.cancelled_at = event.cancelled_at
    order.status = "cancelled"
    remaining = order.points_earned - order.points_reversed
    if remaining > 0 and order.member_id is not None:
        await _reverse(
            session, shop, order, remaining, await _cancel_key(session, shop, order), "Cancelled"
        )
    await referrals.on_order_reversed(session, shop, order.order_id, fully=True)
    await session.flush()


def _reinstate_prefix(order_id: str) -> str:
    return f"order:{order_id}:reinstate:"


async def _reinstatements(session: AsyncSession, shop: Shop, order: Order) -> list[LedgerEntry]:
    """The order's reinstatement entries, oldest first: the ledger is the cycle counter."""
    prefix = _reinstate_prefix(order.order_id)
    entries = await LedgerRepository(session).entries_for_source(shop.id, "order", order.order_id)
    return [e for e in entries if e.idempotency_key.startswith(prefix)]


async def _cancel_key(session: AsyncSession, shop: Shop, order: Order) -> str:
    """`order:<id>:cancel:reverse` the first time; after the n-th reinstatement, `...:<n>`."""
    cycle = len(await _reinstatements(session, shop, order))
    key = f"order:{order.order_id}:cancel:reverse"
    return key if cycle == 0 else f"{key}:{cycle}"


async def _live_earning(session: AsyncSession, shop: Shop, order: Order) -> LedgerEntry | None:
    """The entry that currently carries the order's points: the latest reinstatement, else
    the original earning (a reversal follows its pending status and release date)."""
    reinstated = await _reinstatements(session, shop, order)
    if reinstated:
        return reinstated[-1]
    return await LedgerRepository(session).entry_by_key(shop.id, f"order:{order.order_id}:earn")


async def order_reinstated(session: AsyncSession, shop: Shop, event: OrderPaid) -> bool:
    """A cancelled order is paid again (WooCommerce: status back to processing/completed).

    The ledger stays append-only: a reinstatement entry (`order:<id>:reinstate:<n>`, kind
    `reverse` with positive points, so lifetime and tier points come back too) gives back
    what the cancellation took, i.e. everything beyond what the order's refunds warrant;
    `cancelled_at` is cleared, and the next cancellation posts under a fresh key. An order
    cancelled before it ever earned earns normally on the `order_paid` that follows.
    Shopify has no un-cancel, so only the WooCommerce path calls this. True if it reinstated.
    """
    order = await _lock_order(session, shop.id, event.order_id)
    if order is None or order.cancelled_at is None or event.cancelled:
        return False
    order.cancelled_at = None
    order.status = "open"
    give_back = order.points_reversed - await _refund_target(session, shop, order)
    if give_back > 0 and order.member_id is not None:
        live = await _live_earning(session, shop, order)
        now = utcnow()
        held = (
            live is not None
            and live.status != EntryStatus.available
            and live.available_at is not None
            and live.available_at > now
        )
        cycle = len(await _reinstatements(session, shop, order)) + 1
        entry_id = await ledger.post(
            session,
            shop.id,
            ledger.Posting(
                member_id=order.member_id,
                points=give_back,
                kind="reverse",
                idempotency_key=f"{_reinstate_prefix(order.order_id)}{cycle}",
                status=EntryStatus.pending if held else EntryStatus.available,
                source_type="order",
                source_id=order.order_id,
                program_version_id=order.program_version_id,
                reason=f"Reinstated: order {order.name or order.order_id}",
                available_at=live.available_at if held and live is not None else None,
            ),
        )
        if entry_id is not None:
            order.points_reversed -= give_back
    await session.flush()
    return True


async def _refund_target(session: AsyncSession, shop: Shop, order: Order) -> int:
    """The points the order's refunds alone take back (the cumulative refund rule)."""
    if order.points_earned <= 0:
        return 0
    refunded = await _refunded_total(session, shop.id, order.order_id)
    if refunded <= 0:
        return 0
    return rules.reversal_for_refund(
        order.points_earned, order.merchandise_amount, Decimal(0), refunded, 0
    )


async def _record_cancelled_unknown(
    session: AsyncSession, shop: Shop, event: OrderCancelled
) -> None:
    """A cancellation before Stamp saw the order: remember it, so a late paid never earns."""
    await insert_if_absent(
        session,
        Order,
        shop_id=shop.id,
        order_id=event.order_id,
        currency=shop.currency,
        merchandise_amount=Decimal(0),
        total_amount=Decimal(0),
        refunded_merchandise=Decimal(0),
        points_earned=0,
        points_reversed=0,
        is_test=False,
        status="cancelled",
        cancelled_at=event.cancelled_at,
        created_at=utcnow(),
    )


async def _reverse(
    session: AsyncSession, shop: Shop, order: Order, points: int, key: str, label: str
) -> None:
    """Take back `points` of what the order earned, honouring a still-pending earning.

    A reversal of points still pending (inside the return window) stays pending with the
    same release date; reversing all of it cancels the pending earning outright.
    """
    assert order.member_id is not None
    earn = await _live_earning(session, shop, order)
    if earn is not None and earn.status == EntryStatus.pending:
        if order.points_reversed + points >= order.points_earned:
            # Reversals first, so the pending total never dips below zero on the way.
            order_entries = await LedgerRepository(session).entries_for_source(
                shop.id, "order", order.order_id
            )
            for entry in sorted(order_entries, key=lambda e: e.points):
                if entry.status == EntryStatus.pending:
                    await ledger.cancel_pending(session, entry)
            order.points_reversed = order.points_earned
            await session.flush()
            return
        status, available_at = EntryStatus.pending, earn.available_at
    else:
        status, available_at = EntryStatus.available, None
    entry_id = await ledger.post(
        session,
        shop.id,
        ledger.Posting(
            member_id=order.member_id,
            points=-points,
            kind="reverse",
            idempotency_key=key,
            status=status,
            source_type="order",
            source_id=order.order_id,
            program_version_id=order.program_version_id,
            reason=f"{label}: order {order.name or order.order_id}",
            available_at=available_at,
        ),
    )
    if entry_id is not None:
        order.points_reversed += points
        await session.flush()


# --- customers ----------------------------------------------------------------------------


async def customer_changed(
    session: AsyncSession, shop: Shop, event: CustomerCreated | CustomerUpdated
) -> None:
    """Keep the member in step with the customer; a new account gets the signup bonus once.

    New means Stamp saw it happen: a `customers/create` for an account, or an update that
    turns a member Stamp knew as a guest into an account. Accounts that existed before
    Stamp was installed do not get a bonus when their profile next changes.
    """
    match = await members.member_for_customer(session, shop, event.customer, event.customer.email)
    member = match.member
    is_new_account = match.became_account or (
        isinstance(event, CustomerCreated) and match.created and event.customer.is_account
    )
    if member is None or not is_new_account:
        return
    program = await program_for(session, shop)
    signup = program.config.signup
    if not signup.enabled or signup.points <= 0:
        return
    await ledger.post(
        session,
        shop.id,
        ledger.Posting(
            member_id=member.id,
            points=signup.points,
            kind="signup",
            idempotency_key=f"signup:{member.customer_id or member.id}",
            source_type="customer",
            source_id=member.customer_id,
            program_version_id=program.version_id,
            reason="Created an account",
        ),
    )
    await members.reevaluate_tier(session, member.id, program.config, program.version_id)


class CustomActionRefused(AppError):
    status_code = 409
    code = "custom_action_limit"


async def custom_action(
    session: AsyncSession, shop: Shop, member: Member, event: CustomAction
) -> LedgerEntry:
    """Reward a merchant-defined action once per idempotency key, within its limits."""
    program = await program_for(session, shop)
    action = next((a for a in program.config.custom_actions if a.key == event.action), None)
    if action is None:
        raise AppError(
            f"No custom action {event.action!r} in this shop's program",
            code="unknown_event",
            status_code=422,
        )
    key = f"custom:{event.idempotency_key}"
    repo = LedgerRepository(session)
    existing = await repo.entry_by_key(shop.id, key)
    if existing is not None:
        return existing
    count, last_at = await ActivityRepository(session).custom_history(member.id, action.key)
    if action.limit_per_member is not None and count >= action.limit_per_member:
        raise CustomActionRefused(f"{action.name} can be rewarded {action.limit_per_member} times")
    if action.cooldown_days is not None and last_at is not None:
        if event.occurred_at - last_at < timedelta(days=action.cooldown_days):
            raise CustomActionRefused(
                f"{action.name} can be rewarded once every {action.cooldown_days} days"
            )
    await ledger.post(
        session,
        shop.id,
        ledger.Posting(
            member_id=member.id,
            points=action.points,
            kind="custom",
            idempotency_key=key,
            source_type="custom_action",
            source_id=action.key,
            program_version_id=program.version_id,
            reason=action.name,
            created_at=event.occurred_at,
        ),
    )
    await members.reevaluate_tier(session, member.id, program.config, program.version_id)
    entry = await repo.entry_by_key(shop.id, key)
    assert entry is not None
    return entry


async def verify(session: AsyncSession, shop_id: int | None = None) -> list[str]:
    """Every member whose cached balances differ from the sums of their entries."""
    drift: list[str] = []
    for row in await LedgerRepository(session).recomputed_balances(shop_id):
        cached = (row.points_balance, row.pending_points, row.lifetime_points)
        actual = (int(row.available), int(row.pending), int(row.lifetime))
        if cached != actual:
            drift.append(
                f"member {row.id} (shop {row.shop_id}, customer {row.customer_id}): "
                f"cached balance/pending/lifetime {cached} but entries sum to {actual}"
            )
    return drift


async def entry_count(session: AsyncSession, shop_id: int) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.shop_id == shop_id)
        )
        or 0
    )
