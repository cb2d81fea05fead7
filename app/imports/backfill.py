"""History backfill on install: every Shopify customer and order, so tiers, win-back and
analytics start with the shop's past instead of an empty ledger.

Two bulk exports run one after the other (Shopify allows one bulk query per shop at a
time): customers, then orders with their line items. Customers become members through
`member_for_customer` (no signup bonus: those accounts were not opened under Stamp).
Customers whose email, name and phone Shopify withholds (protected customer data not
granted) come back as nulls and are kept by customer id alone.

Orders go through the same normaliser and engine as the live webhooks. They are recorded
without points unless `reward_past_orders`; then each past paid, non-test, non-cancelled
order earns through the normal rules under `order:<id>:earn`, the live webhook's key, so
a re-run or a late webhook never pays twice. A program that earns on fulfilment rewards
only past orders that are fulfilled. Cancelled orders are recorded as cancelled.

Past refunds are not replayed: amounts are Shopify's *current* ones (line `currentQuantity`,
`currentTotalPriceSet`), so an order earns on what the shopper kept, and later refunds
reverse in proportion to that. Line items are exported because earning leaves out gift
cards and excluded products, which only lines show.

Every chunk of objects is one transaction; a failure part-way leaves earlier chunks
committed and a re-run finishes the job without doubling anything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from itertools import islice
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import unit_of_work
from app.errors import AppError
from app.events import OrderCancelled, OrderPaid
from app.integrations.shopify import bulk
from app.integrations.shopify.admin import AdminClient, client_for_shop, legacy_id
from app.ledger import engine
from app.ledger.engine import OrderOccasion
from app.members.service import member_for_customer
from app.models import LedgerEntry, Order, Platform, Shop, ShopStatus
from app.models.base import utcnow
from app.program.config import ProgramConfig
from app.program.service import current_config
from app.shops.repository import ShopRepository
from app.state import State
from webhooks.shopify.normalise import PayloadError, customer_event, order_event

logger = logging.getLogger(__name__)

T = TypeVar("T")
Progress = Callable[[str], None]

CHUNK_SIZE = 500
# displayFinancialStatus values of an order that was paid and still has money kept.
PAID_STATUSES = frozenset({"PAID", "PARTIALLY_REFUNDED"})
MAX_SKIPPED_LISTED = 100

CUSTOMERS_QUERY = """
{
  customers {
    edges {
      node {
        id
        firstName
        lastName
        state
        defaultEmailAddress { emailAddress }
        defaultPhoneNumber { phoneNumber }
      }
    }
  }
}
"""

ORDERS_QUERY = """
{
  orders {
    edges {
      node {
        id
        name
        email
        createdAt
        processedAt
        cancelledAt
        test
        sourceName
        displayFinancialStatus
        displayFulfillmentStatus
        currentTotalPriceSet { shopMoney { amount currencyCode } }
        customer { id defaultEmailAddress { emailAddress } }
        lineItems {
          edges {
            node {
              id
              quantity
              currentQuantity
              isGiftCard
              product { id }
              variant { id }
              originalUnitPriceSet { shopMoney { amount } }
              discountAllocations { allocatedAmountSet { shopMoney { amount } } }
            }
          }
        }
      }
    }
  }
}
"""


@dataclass(slots=True)
class BackfillReport:
    """Counts of what the run read and changed; `skipped` names objects it could not use."""

    customers: int = 0
    members_created: int = 0
    members_matched: int = 0
    orders: int = 0
    orders_recorded: int = 0
    orders_already_known: int = 0
    orders_earned: int = 0
    points_awarded: int = 0
    skipped: int = 0
    skipped_details: list[str] = field(default_factory=list)

    def skip(self, detail: str) -> None:
        self.skipped += 1
        if len(self.skipped_details) < MAX_SKIPPED_LISTED:
            self.skipped_details.append(detail)


# --- GraphQL objects in the webhook shapes the normaliser reads ----------------------------


def _nested(node: Mapping[str, Any], *path: str) -> Any:
    value: Any = node
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _id_of(value: Any) -> str | None:
    return legacy_id(value) if isinstance(value, str) else None


def customer_payload(node: Mapping[str, Any]) -> dict[str, Any]:
    """A bulk `Customer` line as a `customers/*` webhook body."""
    state = node.get("state")
    return {
        "id": legacy_id(node["id"]),
        "email": _nested(node, "defaultEmailAddress", "emailAddress") or node.get("email"),
        "first_name": node.get("firstName"),
        "last_name": node.get("lastName"),
        "phone": _nested(node, "defaultPhoneNumber", "phoneNumber") or node.get("phone"),
        "state": state.lower() if isinstance(state, str) else None,
    }


def _money(value: Any, path: str) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise PayloadError(f"{path}: {value!r} is not a decimal amount") from None
    if not amount.is_finite():
        raise PayloadError(f"{path}: {value!r} is not a decimal amount")
    return amount


def _current_discount(line: Mapping[str, Any], ordered: int, current: int) -> Decimal:
    """The line's discounts scaled to the units still on the order.

    Shopify's `discountAllocations` cover refunded and removed units too.
    """
    total = Decimal(0)
    for allocation in line.get("discountAllocations") or []:
        total += _money(
            _nested(allocation, "allocatedAmountSet", "shopMoney", "amount"),
            "discountAllocations.allocatedAmountSet",
        )
    if ordered <= 0 or current >= ordered:
        return total
    exponent = total.as_tuple().exponent
    places = min(exponent, -2) if isinstance(exponent, int) else -2
    return (total * current / ordered).quantize(Decimal(1).scaleb(places), ROUND_HALF_UP)


def _line_payload(line: Mapping[str, Any]) -> dict[str, Any]:
    ordered = line.get("quantity")
    current = line.get("currentQuantity", ordered)
    if not isinstance(ordered, int) or not isinstance(current, int):
        raise PayloadError(f"line {line.get('id')!r}: quantities are missing")
    return {
        "id": legacy_id(line["id"]),
        "product_id": _id_of(_nested(line, "product", "id")),
        "variant_id": _id_of(_nested(line, "variant", "id")),
        "quantity": current,
        "price_set": {
            "shop_money": {"amount": _nested(line, "originalUnitPriceSet", "shopMoney", "amount")}
        },
        "discount_allocations": [
            {
                "amount_set": {
                    "shop_money": {"amount": str(_current_discount(line, ordered, current))}
                }
            }
        ],
        "gift_card": line.get("isGiftCard") is True,
    }


def order_payload(node: Mapping[str, Any], lines: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A bulk `Order` line and its line-item lines as an `orders/*` webhook body."""
    customer = node.get("customer")
    status = node.get("displayFinancialStatus")
    total = _nested(node, "currentTotalPriceSet", "shopMoney") or {}
    return {
        "id": legacy_id(node["id"]),
        "name": node.get("name"),
        "email": node.get("email"),
        "customer": (
            {
                "id": legacy_id(customer["id"]),
                "email": _nested(customer, "defaultEmailAddress", "emailAddress"),
            }
            if isinstance(customer, Mapping) and customer.get("id")
            else None
        ),
        "total_price_set": {
            "shop_money": {
                "amount": total.get("amount"),
                "currency_code": total.get("currencyCode"),
            }
        },
        "line_items": [_line_payload(line) for line in lines],
        "test": node.get("test") is True,
        "source_name": node.get("sourceName"),
        "financial_status": status.lower() if isinstance(status, str) else None,
        "created_at": node.get("createdAt"),
        "processed_at": node.get("processedAt"),
        "cancelled_at": node.get("cancelledAt"),
    }


@dataclass(frozen=True, slots=True)
class _PastOrder:
    paid: OrderPaid
    cancelled: OrderCancelled | None
    # The topics that could have earned for this order, given its state today.
    occasions: tuple[OrderOccasion, ...]

    def occasion(self, config: ProgramConfig) -> OrderOccasion:
        """The occasion to apply it with: one that earns under the program's trigger
        (paid, or fulfilled) if the order may earn, else one that only records it."""
        for occasion in self.occasions:
            if engine.order_earns_now(self.paid, occasion, config):
                return occasion
        return OrderOccasion.updated


def _past_order(
    node: Mapping[str, Any], lines: list[dict[str, Any]], reward_past_orders: bool
) -> _PastOrder:
    payload = order_payload(node, lines)
    paid = order_event("orders/paid", payload)
    assert isinstance(paid, OrderPaid)
    cancelled: OrderCancelled | None = None
    if payload["cancelled_at"] is not None:
        event = order_event("orders/cancelled", payload)
        assert isinstance(event, OrderCancelled)
        cancelled = event
    occasions: tuple[OrderOccasion, ...] = ()
    if (
        reward_past_orders
        and node.get("displayFinancialStatus") in PAID_STATUSES
        and not paid.is_test
        and cancelled is None
    ):
        occasions = (OrderOccasion.paid,)
        if node.get("displayFulfillmentStatus") == "FULFILLED":
            occasions += (OrderOccasion.fulfilled,)
    return _PastOrder(paid, cancelled, occasions)


# --- the run ------------------------------------------------------------------------------


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


async def _shop(state: State, shop_id: int) -> Shop:
    async with state.sessionmaker() as session:
        shop = await session.get(Shop, shop_id)
    if shop is None or shop.platform != Platform.shopify:
        raise AppError(f"No Shopify shop with id {shop_id}", code="shop_not_found", status_code=404)
    if shop.status != ShopStatus.installed:
        raise AppError(f"{shop.domain} is not installed", code="shop_not_installed")
    return shop


async def backfill_shop(
    state: State,
    shop_id: int,
    reward_past_orders: bool = False,
    *,
    client: AdminClient | None = None,
    progress: Progress | None = None,
) -> BackfillReport:
    """Import the shop's customers and orders from Shopify; safe to run again at any time."""
    shop = await _shop(state, shop_id)
    admin = client or await client_for_shop(state, shop_id)
    say = progress or (lambda message: None)
    report = BackfillReport()
    async with unit_of_work(state.sessionmaker) as session:
        await ShopRepository(session).history_import_started(shop_id, utcnow())

    say("Exporting customers from Shopify")
    operation = await bulk.run_query(admin, CUSTOMERS_QUERY)
    async with bulk.download(state, operation) as result:
        for chunk in _chunks(result.records(), CHUNK_SIZE):
            await _customers(state, shop.id, chunk, report)
            say(f"Customers: {report.customers} read")

    say("Exporting orders from Shopify")
    operation = await bulk.run_query(admin, ORDERS_QUERY, group_objects=True)
    async with bulk.download(state, operation) as result:
        for order_chunk in _chunks(result.grouped(), CHUNK_SIZE):
            await _orders(state, shop.id, order_chunk, reward_past_orders, report)
            say(f"Orders: {report.orders} read")

    async with unit_of_work(state.sessionmaker) as session:
        await ShopRepository(session).history_import_finished(shop_id, utcnow())
    logger.info("Backfill of %s: %s", shop.domain, report)
    return report


async def _customers(
    state: State, shop_id: int, nodes: list[dict[str, Any]], report: BackfillReport
) -> None:
    created = updated = 0
    async with unit_of_work(state.sessionmaker) as session:
        shop = await _shop_in(session, shop_id)
        for node in nodes:
            try:
                customer = customer_event("customers/update", customer_payload(node)).customer
            except (PayloadError, ValueError, KeyError) as exc:
                report.skip(f"customer {node.get('id')!r}: {exc}")
                continue
            match = await member_for_customer(
                session, shop, customer, customer.email, announce=False
            )
            if match.created:
                created += 1
            elif match.member is not None:
                updated += 1
    report.customers += len(nodes)
    report.members_created += created
    report.members_matched += updated


async def _shop_in(session: AsyncSession, shop_id: int) -> Shop:
    shop = await session.get(Shop, shop_id)
    if shop is None:
        raise AppError(f"No shop with id {shop_id}", code="shop_not_found", status_code=404)
    return shop


async def _known_orders(session: AsyncSession, shop_id: int, order_ids: list[str]) -> set[str]:
    result = await session.execute(
        select(Order.order_id).where(Order.shop_id == shop_id, Order.order_id.in_(order_ids))
    )
    return set(result.scalars())


async def _earnings(session: AsyncSession, shop_id: int, order_ids: list[str]) -> dict[str, int]:
    keys = [f"order:{order_id}:earn" for order_id in order_ids]
    result = await session.execute(
        select(LedgerEntry.idempotency_key, LedgerEntry.points).where(
            LedgerEntry.shop_id == shop_id, LedgerEntry.idempotency_key.in_(keys)
        )
    )
    return {row.idempotency_key: row.points for row in result}


async def _orders(
    state: State,
    shop_id: int,
    groups: list[tuple[dict[str, Any], list[dict[str, Any]]]],
    reward_past_orders: bool,
    report: BackfillReport,
) -> None:
    past: list[_PastOrder] = []
    for node, lines in groups:
        try:
            past.append(_past_order(node, lines, reward_past_orders))
        except (PayloadError, ValueError, KeyError) as exc:
            report.skip(f"order {node.get('id')!r}: {exc}")
    ids = [order.paid.order_id for order in past]
    async with unit_of_work(state.sessionmaker) as session:
        shop = await _shop_in(session, shop_id)
        config = await current_config(session, shop)
        known = await _known_orders(session, shop_id, ids)
        earned_before = await _earnings(session, shop_id, ids)
        for order in past:
            await engine.apply(session, shop, order.paid, occasion=order.occasion(config))
            if order.cancelled is not None:
                await engine.apply(session, shop, order.cancelled)
        earned_after = await _earnings(session, shop_id, ids)
    new_earnings = {key: points for key, points in earned_after.items() if key not in earned_before}
    report.orders += len(groups)
    report.orders_recorded += len(ids) - len(known)
    report.orders_already_known += len(known)
    report.orders_earned += len(new_earnings)
    report.points_awarded += sum(new_earnings.values())
