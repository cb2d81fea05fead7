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
from app.members.repository import MemberRepository, MemberWriter, lookup_email
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


@dataclass(frozen=True, slots=True)
class _Buyer:
    """Who an order of the batch is from: a customer (by id) or a guest (by email)."""

    customer: CustomerInfo | None  # None: a guest checkout
    email: str | None  # as the order gives it; a guest always has one


@dataclass(slots=True)
class _Plan:
    item: OrderDelivery
    event: OrderPaid
    buyer: _Buyer
    member: Member | None  # None: a member is created for the buyer
    window_points: int
    points: int
    basis: Decimal
    member_id: int = 0


async def apply_orders(
    session: AsyncSession, shop: Shop, items: Sequence[OrderDelivery]
) -> list[OrderDelivery]:
    """Apply a batch of order events of one shop, in the caller's transaction; the result
    is what applying them one by one in the order they came gives.

    Returns the events in the order their effects were applied: those written together
    first, then the others one by one in the order they came. An event is written together
    only if no event before it in the batch touches its order, its customer, its email or
    its member, so moving it ahead of the others changes nothing.
    """
    program = await engine.program_for(session, shop)
    alone: list[OrderDelivery] = []
    written: list[OrderDelivery] = []
    if _may_batch(program.config):
        written = await _earn_together(session, shop, program, items, alone)
    else:
        alone = list(items)
    for item in alone:
        await engine.apply(
            session, shop, item.event, occasion=item.occasion, signals=item.signals()
        )
        # What one event changed is in the database before the next reads it, as it would
        # be after its own commit (a later read may refresh an object from the database).
        await session.flush()
    return written + alone


def _may_batch(config: ProgramConfig) -> bool:
    """Referral checks and tiers by money spent need the per-order path for every order."""
    return not config.referral.enabled and tier_window_filter(config) is not None


def _candidate(
    item: OrderDelivery, buyer: _Buyer | None, config: ProgramConfig
) -> OrderPaid | None:
    """The event if it may earn together, judged on it, its buyer and the program."""
    event = item.event
    accounts_only = config.participation is Participation.accounts_only
    if (
        not isinstance(event, OrderPaid)
        or buyer is None
        or event.cancelled
        or event.is_test
        or not engine.order_earns_now(event, item.occasion, config)
        or (accounts_only and (buyer.customer is None or not buyer.customer.is_account))
    ):
        return None
    return event


def _buyer(event: DomainEvent) -> _Buyer | None:
    """A paid order's buyer as `members.member_for_customer` sees them; None for any other
    event and for an order from no one."""
    if not isinstance(event, OrderPaid):
        return None
    customer = event.customer
    email = (customer.email if customer else None) or event.email
    if customer is not None and customer.customer_id:
        return _Buyer(customer, email)
    return _Buyer(None, email) if email else None


def _keys(event: DomainEvent, buyer: _Buyer | None) -> set[str]:
    """What an event may touch, as far as the event itself says."""
    keys: set[str] = set()
    if order_id := _order_id(event):
        keys.add(f"order:{order_id}")
    if buyer is not None and buyer.customer is not None:
        keys.add(f"customer:{buyer.customer.customer_id}")
    if buyer is not None and buyer.email:
        keys.add(f"email:{lookup_email(buyer.email)}")
    return keys


async def _earn_together(
    session: AsyncSession,
    shop: Shop,
    program: engine.Program,
    items: Sequence[OrderDelivery],
    alone: list[OrderDelivery],
) -> list[OrderDelivery]:
    """Write the batch's common-case orders set-wise; return those written, and put every
    other event, in the order they came, in `alone`."""
    config = program.config
    buyers = [_buyer(item.event) for item in items]
    customers = [buyer.customer for buyer in buyers if buyer is not None and buyer.customer]
    emails = {buyer.email for buyer in buyers if buyer is not None and buyer.email}
    known = await MemberRepository(session).with_customer_ids_or_emails(
        shop.id,
        sorted({customer.customer_id for customer in customers if customer.customer_id}),
        sorted(emails | {lookup_email(email) for email in emails}),
        config,
    )
    order_ids = sorted({order_id for item in items if (order_id := _order_id(item.event))})
    orders = OrderRepository(session)
    known_orders = await orders.members_of(shop.id, order_ids)
    refunded = await orders.refunded_before(shop.id, order_ids)

    plans: list[_Plan] = []
    seen: set[str] = set()
    for item, buyer in zip(items, buyers, strict=True):
        keys = _keys(item.event, buyer)
        event = _candidate(item, buyer, config)
        plan = None
        if event is not None and buyer is not None:
            plan, member_key = _plan(item, event, buyer, known, known_orders, refunded, config)
        else:
            member_key = _member_key_of(item.event, buyer, known, known_orders)
        if member_key:
            keys.add(member_key)
        if plan is None or keys & seen:
            alone.append(item)
        else:
            plans.append(plan)
        seen |= keys

    now = utcnow()
    release_at = rules.pending_release_at(now, config)
    status = EntryStatus.pending if release_at else EntryStatus.available
    created = await _create_members(session, shop, plans, config, release_at, status, now)
    # New members are inserted holding their first earning: no balance update for them.
    made = {row["id"] for row in created}
    plans = _keep(plans, alone, lambda plan: plan.member is not None or plan.member_id != 0)
    for plan in plans:
        if plan.member is not None:
            plan.member_id = plan.member.id

    inserted = await orders.insert_many(
        sorted(
            (_order_row(shop, plan, program.version_id, now) for plan in plans),
            key=lambda row: str(row["order_id"]),
        )
    )
    if any(
        plan.member_id in made and plan.points > 0 and plan.event.order_id not in inserted
        for plan in plans
    ):
        # Another transaction wrote the order meanwhile: its member holds points no entry
        # of this batch will back. Go one by one.
        raise BatchConflict("an order of a member made by this batch was already written")
    plans = _keep(plans, alone, lambda plan: plan.event.order_id in inserted)
    if await orders.refunded_before(shop.id, sorted(inserted)):
        # A refund committed between the first read and the insert: go one by one.
        raise BatchConflict("a refund arrived for an order of the batch while it was written")

    earning = [plan for plan in plans if plan.points > 0]
    entries = sorted(
        (_entry_row(shop, plan, program.version_id, status, release_at, now) for plan in earning),
        key=lambda row: str(row["idempotency_key"]),
    )
    if len(await LedgerRepository(session).append_many(entries)) != len(entries):
        raise BatchConflict("an earning of a new order was already in the ledger")
    await LedgerRepository(session).move_balances(
        [
            (plan.member_id, balance_delta("earn", status, plan.points))
            for plan in earning
            if plan.member_id not in made
        ]
    )
    for plan in earning:
        await rollups.record_entry(
            session, shop.id, plan.member_id, now, "earn", status, plan.points
        )
    await outbox.record_many(
        session,
        [_joined_row(shop.id, row["id"], row["customer_id"], row["is_account"], now)
         for row in created]
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
    arrival = {id(item): index for index, item in enumerate(items)}
    alone.sort(key=lambda one: arrival[id(one)])
    return [plan.item for plan in plans]


def _order_id(event: DomainEvent) -> str | None:
    order_id = getattr(event, "order_id", None)
    return order_id if isinstance(order_id, str) else None


def _plan(
    item: OrderDelivery,
    event: OrderPaid,
    buyer: _Buyer,
    known: list[tuple[Member, int]],
    known_orders: dict[str, int | None],
    refunded: set[str],
    config: ProgramConfig,
) -> tuple[_Plan | None, str | None]:
    """What the order earns if it can be written together (else None), and the key of the
    member it would touch."""
    found = _member_of(buyer, known)
    member, window_points = found if isinstance(found, tuple) else (None, 0)
    member_key = f"member:{member.id}" if member is not None else None
    if found is _CLAIMS_GUEST or event.order_id in known_orders or event.order_id in refunded:
        return None, member_key  # a guest's points claimed, a known order, an earlier refund
    customer = buyer.customer
    if (
        member is not None
        and customer is not None
        and not members.profile_is_current(member, customer)
    ):
        return None, member_key  # the member's profile is updated on the way
    tier = rules.tier_for(max(window_points, 0), config)
    points = rules.order_earning(event, config, rules.tier_multiplier(tier)) or 0
    basis = rules.earning_basis(event, config)
    return _Plan(item, event, buyer, member, window_points, points, basis), member_key


def _member_key_of(
    event: DomainEvent,
    buyer: _Buyer | None,
    known: list[tuple[Member, int]],
    known_orders: dict[str, int | None],
) -> str | None:
    """The member an event that goes alone would touch, where the batch can tell."""
    order_id = _order_id(event)
    if order_id is not None and known_orders.get(order_id):
        return f"member:{known_orders[order_id]}"
    if buyer is not None:
        found = _member_of(buyer, known)
        if isinstance(found, tuple):
            return f"member:{found[0].id}"
    return None


_CLAIMS_GUEST = object()


def _member_of(
    buyer: _Buyer, known: list[tuple[Member, int]]
) -> tuple[Member, int] | object | None:
    """The buyer's member and tier-window points as `member_for_customer` would find it:
    None when a new member is made, `_CLAIMS_GUEST` when a guest member would be claimed."""
    if buyer.customer is not None:
        for member, points in known:
            if member.customer_id == buyer.customer.customer_id:
                return member, points
        if buyer.email and any(
            member.customer_id is None and member.email == buyer.email for member, _ in known
        ):
            return _CLAIMS_GUEST
        return None
    assert buyer.email is not None
    email = lookup_email(buyer.email)
    matches = [(member, points) for member, points in known if member.email == email]
    # The same preference as member_for_customer: an account holder, then the oldest.
    return min(matches, key=lambda pair: (not pair[0].is_account, pair[0].id), default=None)


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
    status: EntryStatus,
    now: datetime,
) -> list[dict[str, Any]]:
    """Insert the batch's new members (customers and guests); the rows made, for the outbox.

    A member whose order earns is inserted with that earning in its balances, as posting it
    would leave them (`updated_at` set; None when nothing was earned). A member another
    transaction created meanwhile is skipped here (its order goes alone)."""
    # In key order: two transactions inserting the same members wait, never deadlock.
    new = sorted(
        (plan for plan in plans if plan.member is None),
        key=lambda plan: (
            plan.buyer.customer.customer_id or "" if plan.buyer.customer else "",
            plan.buyer.email or "",
        ),
    )
    rows = []
    for plan in new:
        customer = plan.buyer.customer
        profile = (
            members.new_member_values(customer)
            if customer is not None
            else {"email": plan.buyer.email, "first_name": None, "last_name": None, "phone": None}
        )
        opening = balance_delta("earn", status, plan.points)
        earned = now if plan.points > 0 else None
        rows.append(
            {
                "shop_id": shop.id,
                "customer_id": customer.customer_id if customer else None,
                "is_account": customer.is_account if customer else False,
                "referral_code": members.new_referral_code(),
                "points_balance": opening.available,
                "pending_points": opening.pending,
                "lifetime_points": opening.lifetime,
                "expiring_points": 0,
                "tier_name": _starting_tier(plan, config, release_at),
                "sync_dirty_at": earned,
                "updated_at": earned,
                "created_at": now,
                **profile,
            }
        )
    made = await MemberWriter(session).insert_many(rows)
    ids = {(customer_id, None if customer_id else email): id_ for id_, customer_id, email in made}
    created: list[dict[str, Any]] = []
    for plan, row in zip(new, rows, strict=True):
        key = (row["customer_id"], None if row["customer_id"] else row["email"])
        if key in ids:
            plan.member_id = ids[key]
            created.append(row | {"id": plan.member_id})
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
    shop_id: int, member_id: int, customer_id: str | None, is_account: bool, now: datetime
) -> dict[str, Any]:
    unique_id, properties = outbox.member_joined(member_id, customer_id, is_account)
    return {
        "shop_id": shop_id,
        "member_id": member_id,
        "name": outbox.MEMBER_CREATED,
        "unique_id": unique_id,
        "properties": properties,
        "occurred_at": now,
    }


def _earned_row(shop_id: int, entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "shop_id": shop_id,
        "member_id": entry["member_id"],
        "name": outbox.POINTS_EARNED,
        "unique_id": entry["idempotency_key"],
        "properties": outbox.points_earned(
            entry["points"],
            entry["kind"],
            entry["status"],
            entry["reason"],
            entry["source_type"],
            entry["source_id"],
        ),
        "occurred_at": entry["created_at"],
    }
