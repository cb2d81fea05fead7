"""Earning for many orders at once: the set-based form of `engine.order_paid`.

Order webhooks that arrive together are applied in one transaction (`webhooks/batch.py`),
and a round trip costs far more than the rows it carries. So the common case — a paid
order Stamp has not seen, from a customer with a platform account whose profile has not
changed, no refund recorded before it — is written for the whole batch with one statement
per table: members, orders, entries, balances, the daily rollup, the outbox.

Everything else goes through `engine.apply`, one event at a time, in the same
transaction and after the batch rows: a guest checkout, an order that claims a guest's
points, an order Stamp already knows, a refund that came first, a customer's second order
in the batch, any program with referrals or tiers by money spent. The result is what
applying the events one after another gives; `tests/ledger/test_batch.py` checks that on
random batches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.events import CustomerInfo, DomainEvent, OrderPaid
from app.ledger import engine, outbox
from app.ledger.repository import LedgerRepository, OrderRepository, tier_window_filter
from app.ledger.service import balance_delta
from app.members import service as members
from app.members.repository import MemberRepository, MemberWriter
from app.models import EntryStatus, Member, Shop
from app.models.base import utcnow
from app.program import rules
from app.program.config import Participation, ProgramConfig
from app.referrals.service import OrderSignals
from app.rewards import service as rewards
from app.rollups import service as rollups


class BatchConflict(RuntimeError):
    """Something the batch assumed new was not; the caller applies the events one by one."""


@dataclass(frozen=True, slots=True)
class OrderDelivery:
    """One order event of a batch, with what `engine.apply` needs if it goes alone."""

    event: DomainEvent
    occasion: engine.OrderOccasion
    signals: Callable[[], OrderSignals]  # hashing the buyer's traits is left until needed


@dataclass(slots=True)
class _Plan:
    item: OrderDelivery
    event: OrderPaid
    customer: CustomerInfo
    member: Member | None  # None: a member is created for the order's customer
    window_points: int
    points: int
    basis: Decimal
    member_id: int = 0


async def apply_orders(
    session: AsyncSession, shop: Shop, items: Sequence[OrderDelivery]
) -> list[OrderDelivery]:
    """Apply a batch of order events of one shop, in the caller's transaction.

    Returns the events in the order their effects were applied: those written together
    first (they share no customer and no order, so their own order does not matter), then
    the others one by one in the order they came.
    """
    program = await engine.program_for(session, shop)
    together, alone = _split(items, program.config)
    written: list[OrderDelivery] = []
    if together:
        written = await _earn_together(session, shop, program, together, alone)
    arrival = {id(item): index for index, item in enumerate(items)}
    alone.sort(key=lambda one: arrival[id(one)])
    for item in alone:
        await engine.apply(
            session, shop, item.event, occasion=item.occasion, signals=item.signals()
        )
        # What one event changed is in the database before the next reads it, as it would
        # be after its own commit (a later read may refresh an object from the database).
        await session.flush()
    return written + alone


Together = list[tuple[OrderDelivery, OrderPaid, CustomerInfo]]


def _split(
    items: Sequence[OrderDelivery], config: ProgramConfig
) -> tuple[Together, list[OrderDelivery]]:
    """Which events may earn together, judged on the event and the program alone."""
    if config.referral.enabled or tier_window_filter(config) is None:
        return [], list(items)
    together: Together = []
    alone: list[OrderDelivery] = []
    customers: set[str] = set()
    orders: set[str] = set()
    for item in items:
        event = item.event
        customer = event.customer if isinstance(event, OrderPaid) else None
        if (
            not isinstance(event, OrderPaid)
            or customer is None
            or not customer.customer_id
            or customer.customer_id in customers
            or event.order_id in orders
            or event.cancelled
            or event.is_test
            or not engine.order_earns_now(event, item.occasion, config)
            or (config.participation is Participation.accounts_only and not customer.is_account)
        ):
            alone.append(item)
            continue
        customers.add(customer.customer_id)
        orders.add(event.order_id)
        together.append((item, event, customer))
    return together, alone


def _email(event: OrderPaid) -> str | None:
    return (event.customer.email if event.customer else None) or event.email


async def _earn_together(
    session: AsyncSession,
    shop: Shop,
    program: engine.Program,
    together: Together,
    alone: list[OrderDelivery],
) -> list[OrderDelivery]:
    """Write the batch's common-case orders set-wise; return those written, and add the
    events that must go one by one to `alone`."""
    config = program.config
    known = await MemberRepository(session).customers_or_guests_with_tier_points(
        shop.id,
        [customer.customer_id for _, _, customer in together if customer.customer_id],
        [email for _, event, _ in together if (email := _email(event))],
        config,
    )
    by_customer = {member.customer_id: (member, points) for member, points in known}
    guest_emails = {member.email for member, _ in known if member.customer_id is None}
    refunded = await OrderRepository(session).refunded_before(
        shop.id, [event.order_id for _, event, _ in together]
    )

    plans: list[_Plan] = []
    for item, event, customer in together:
        found = by_customer.get(customer.customer_id)
        if event.order_id in refunded:
            alone.append(item)  # the earning must reverse those refunds at once
            continue
        if found is None:
            if _email(event) in guest_emails:
                alone.append(item)  # the new customer claims a guest member's points
                continue
            member, window_points = None, 0
        else:
            member, window_points = found
            if not members.profile_is_current(member, customer):
                alone.append(item)  # the member's profile is updated on the way
                continue
        tier = rules.tier_for(max(window_points, 0), config)
        points = rules.order_earning(event, config, rules.tier_multiplier(tier)) or 0
        basis = rules.earning_basis(event, config)
        plans.append(_Plan(item, event, customer, member, window_points, points, basis))

    now = utcnow()
    release_at = rules.pending_release_at(now, config)
    created = await _create_members(session, shop, plans, config, release_at, now)
    plans = _keep(plans, alone, lambda plan: plan.member is not None or plan.member_id != 0)
    for plan in plans:
        if plan.member is not None:
            plan.member_id = plan.member.id

    inserted = await OrderRepository(session).insert_many(
        [_order_row(shop, plan, program.version_id, now) for plan in plans]
    )
    plans = _keep(plans, alone, lambda plan: plan.event.order_id in inserted)

    earning = [plan for plan in plans if plan.points > 0]
    status = EntryStatus.pending if release_at else EntryStatus.available
    entries = [
        _entry_row(shop, plan, program.version_id, status, release_at, now) for plan in earning
    ]
    if len(await LedgerRepository(session).append_many(entries)) != len(entries):
        raise BatchConflict("an earning of a new order was already in the ledger")
    await LedgerRepository(session).move_balances(
        [(plan.member_id, balance_delta("earn", status, plan.points)) for plan in earning]
    )
    for plan in earning:
        await rollups.record_entry(
            session, shop.id, plan.member_id, now, "earn", status, plan.points
        )
    await outbox.record_many(
        session,
        [_joined_row(shop.id, member_id, customer_id, is_account, now)
         for customer_id, (member_id, is_account) in created.items()]
        + [_earned_row(shop.id, entry) for entry in entries],
    )  # fmt: skip

    for plan in plans:
        event = plan.event
        await rewards.mark_codes_used(
            session, shop.id, event.discount_codes, event.order_id, event.placed_at
        )
    for plan in earning:
        window_points = plan.window_points + (0 if release_at else plan.points)
        tier = rules.tier_for(max(window_points, 0), config)
        current = (
            plan.member.tier_name
            if plan.member is not None
            else _starting_tier(plan, config, release_at)
        )
        if tier is not None and tier.name != current:
            await members.reevaluate_tier(
                session, plan.member_id, config, program.version_id, window_points
            )
    return [plan.item for plan in plans]


def _keep(
    plans: list[_Plan], alone: list[OrderDelivery], keep: Callable[[_Plan], bool]
) -> list[_Plan]:
    kept = [plan for plan in plans if keep(plan)]
    alone.extend(plan.item for plan in plans if not keep(plan))
    return kept


def _starting_tier(plan: _Plan, config: ProgramConfig, release_at: datetime | None) -> str | None:
    """The tier a new member is created with: the one their first earning reaches, when
    reaching it is no news (the lowest tier) and carries no reward; else None, and
    `reevaluate_tier` moves them as it would one order at a time."""
    if plan.points <= 0:
        return None
    tier = rules.tier_for(0 if release_at else plan.points, config)
    if tier is None or tier.entry_reward > 0 or tier.name != config.tiers.levels[0].name:
        return None
    return tier.name


async def _create_members(
    session: AsyncSession,
    shop: Shop,
    plans: list[_Plan],
    config: ProgramConfig,
    release_at: datetime | None,
    now: datetime,
) -> dict[str, tuple[int, bool]]:
    """Insert the batch's new members; customer id → (member id, is account) of those made.

    A customer another transaction created meanwhile is skipped here (and goes alone)."""
    new = [plan for plan in plans if plan.member is None]
    rows = []
    for plan in new:
        customer = plan.customer
        rows.append(
            {
                "shop_id": shop.id,
                "customer_id": customer.customer_id,
                "is_account": customer.is_account,
                "referral_code": members.new_referral_code(),
                "points_balance": 0,
                "pending_points": 0,
                "lifetime_points": 0,
                "expiring_points": 0,
                "tier_name": _starting_tier(plan, config, release_at),
                "sync_dirty_at": None,
                "created_at": now,
                **members.new_member_values(customer),
            }
        )
    ids = await MemberWriter(session).insert_many(rows)
    created: dict[str, tuple[int, bool]] = {}
    for plan in new:
        customer = plan.customer
        if customer.customer_id in ids:
            plan.member_id = ids[customer.customer_id]
            created[customer.customer_id] = (plan.member_id, customer.is_account)
    return created


def _order_row(shop: Shop, plan: _Plan, version_id: int, now: datetime) -> dict[str, Any]:
    event = plan.event
    return {
        "shop_id": shop.id,
        "member_id": plan.member_id,
        "order_id": event.order_id,
        "name": event.name,
        "currency": event.currency,
        "merchandise_amount": plan.basis,
        "total_amount": event.total,
        "refunded_merchandise": Decimal(0),
        "points_earned": plan.points,
        "points_reversed": 0,
        "program_version_id": version_id,
        "is_test": event.is_test,
        "source_name": event.source_name,
        "status": "open",
        "placed_at": event.placed_at,
        "created_at": now,
    }


def _entry_row(
    shop: Shop,
    plan: _Plan,
    version_id: int,
    status: str,
    release_at: datetime | None,
    now: datetime,
) -> dict[str, Any]:
    event = plan.event
    return {
        "shop_id": shop.id,
        "member_id": plan.member_id,
        "points": plan.points,
        "kind": "earn",
        "status": status,
        "idempotency_key": f"order:{event.order_id}:earn",
        "source_type": "order",
        "source_id": event.order_id,
        "program_version_id": version_id,
        "amount": plan.basis,
        "currency": event.currency,
        "reason": f"Order {event.name or event.order_id}",
        "actor": None,
        "available_at": release_at,
        "expires_at": None,
        "created_at": now,
    }


def _joined_row(
    shop_id: int, member_id: int, customer_id: str, is_account: bool, now: datetime
) -> dict[str, Any]:
    return {
        "shop_id": shop_id,
        "member_id": member_id,
        "name": outbox.MEMBER_CREATED,
        "unique_id": f"member:{member_id}:created",
        "properties": {"customer_id": customer_id, "is_account": is_account},
        "occurred_at": now,
    }


def _earned_row(shop_id: int, entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "shop_id": shop_id,
        "member_id": entry["member_id"],
        "name": outbox.POINTS_EARNED,
        "unique_id": entry["idempotency_key"],
        "properties": {
            "points": entry["points"],
            "kind": entry["kind"],
            "status": entry["status"],
            "reason": entry["reason"],
            "source_type": entry["source_type"],
            "source_id": entry["source_id"],
        },
        "occurred_at": entry["created_at"],
    }
