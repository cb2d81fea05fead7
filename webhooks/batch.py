"""Group commit for order webhooks: deliveries that arrive together share one transaction.

Under load a web process holds many order deliveries at once. Each is still verified on its
own and answered only after the transaction holding its effects has committed, but the
deliveries that wait while a batch is being written go into the next batch together
(`app/ledger/batch.py` writes their common case with one statement per table). A delivery
that arrives alone goes straight through `pipeline.process`, as before.

If anything in a batch fails, nothing of it was committed: each delivery is processed
again on its own by `pipeline.process`, which gives it its usual answer (dead letter,
503 for Shopify to retry, 404 or 410 for a shop that is not installed).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import unit_of_work
from app.ledger.batch import OrderDelivery, apply_orders
from app.models import Shop, ShopStatus
from app.models.base import utcnow
from app.observability.metrics import WEBHOOK_BATCH_SIZE
from app.state import State
from webhooks.pipeline import (
    Delivery,
    Handler,
    Outcome,
    ShopGate,
    delivery_row,
    find_shop,
    insert_deliveries,
    is_transient,
    parse_json,
    process,
)
from webhooks.shopify.handlers import order_delivery

logger = logging.getLogger("stamp.webhooks")


@dataclass(slots=True)
class _Waiting:
    gate: ShopGate
    delivery: Delivery
    answer: asyncio.Future[Outcome]


@dataclass(slots=True)
class OrderBatcher:
    """Collects a process's order deliveries; `lanes` batches are written at a time.

    One lane by default: while a batch is written, everything that arrives waits for the
    next one, so batches grow with the load and a process's CPU goes to requests rather than
    round trips (measured in bench/README.md: two lanes gave smaller batches and fewer
    orders a second). PostgreSQL still sees one transaction per web process at a time.
    """

    state: State
    handlers: dict[str, Handler]
    size: int = 64
    lanes: int = 1
    linger: float = 0.001
    linger_steps: int = 3
    _waiting: list[_Waiting] = field(default_factory=list)
    _last: int = 0
    _lanes: set[asyncio.Task[None]] = field(default_factory=set)  # held: a task is weak

    async def submit(self, gate: ShopGate, delivery: Delivery) -> Outcome:
        answer: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(gate, delivery, answer))
        if len(self._lanes) < self.lanes:
            lane = asyncio.get_running_loop().create_task(self._lane())
            self._lanes.add(lane)
            lane.add_done_callback(self._lanes.discard)
        return await answer

    async def _gather(self) -> None:
        """Under load (the last batch held more than one), wait while deliveries keep
        arriving, `linger` seconds at a time and `linger_steps` times at most.

        The senders just answered by the last batch send their next delivery at once;
        without this wait the lane starts on the few that came meanwhile, those senders come
        back during that batch, and the process settles into two half-size batches a round
        (measured in bench/README.md: 19 + 6 and 28 + 11 instead of 25 and 39)."""
        if self._last <= 1:
            return
        for _ in range(self.linger_steps):
            before = len(self._waiting)
            if before >= self.size:
                return
            await asyncio.sleep(self.linger)
            if len(self._waiting) == before:
                return

    async def _lane(self) -> None:
        while self._waiting:
            await self._gather()
            batch = self._waiting[: self.size]
            del self._waiting[: self.size]
            if not batch:
                continue  # another lane took them while this one waited
            self._last = len(batch)
            try:
                outcomes = await process_orders(
                    self.state, [(one.gate, one.delivery) for one in batch], self.handlers
                )
            except Exception as exc:  # never leave a delivery without its answer
                for one in batch:
                    if not one.answer.done():
                        one.answer.set_exception(exc)
                continue
            except BaseException:  # cancelled (shutting down): so are the requests
                for one in batch:
                    one.answer.cancel()
                raise
            for one, outcome in zip(batch, outcomes, strict=True):
                if not one.answer.done():
                    one.answer.set_result(outcome)
        # No await since the queue was last seen empty: a delivery submitted from now on
        # finds this lane gone and starts another.
        lane = asyncio.current_task()
        if lane is not None:
            self._lanes.discard(lane)


@dataclass(slots=True)
class _Parsed:
    index: int
    gate: ShopGate
    delivery: Delivery
    order: OrderDelivery


def _parse(index: int, gate: ShopGate, delivery: Delivery) -> _Parsed | None:
    """The delivery as an order event, or None when it must go alone (it will not parse)."""
    try:
        order = order_delivery(delivery.topic, parse_json(delivery.body))
    except Exception:
        return None  # `process` keeps it as a dead letter, with the reason
    return _Parsed(index, gate, delivery, order)


async def process_orders(
    state: State, batch: list[tuple[ShopGate, Delivery]], handlers: dict[str, Handler]
) -> list[Outcome]:
    """Process order deliveries together; the outcome of each, in order."""
    WEBHOOK_BATCH_SIZE.observe(len(batch))
    outcomes: list[Outcome | None] = [None] * len(batch)
    if len(batch) > 1:
        parsed = [
            one
            for index, (gate, delivery) in enumerate(batch)
            if (one := _parse(index, gate, delivery)) is not None
        ]
        for attempt in (1, 2):  # a deadlock with another process's batch: once more
            try:
                async with unit_of_work(state.sessionmaker) as session:
                    await _apply_together(session, parsed, outcomes)
                break
            except Exception as exc:
                outcomes = [None] * len(batch)
                logger.warning(
                    "a batch of %d order deliveries failed (%s: %s)%s",
                    len(batch),
                    type(exc).__name__,
                    exc,
                    "; trying it again" if attempt == 1 and is_transient(exc) else
                    "; each goes again alone",
                )  # fmt: skip
                if attempt == 2 or not is_transient(exc):
                    break
    for index, (gate, delivery) in enumerate(batch):
        if outcomes[index] is None:
            outcomes[index] = await _alone(state, gate, delivery, handlers)
    return [outcome for outcome in outcomes if outcome is not None]


async def _alone(
    state: State, gate: ShopGate, delivery: Delivery, handlers: dict[str, Handler]
) -> Outcome:
    """One delivery through the pipeline; its failure is its own (the batch has committed)."""
    try:
        return await process(state, gate, delivery, handlers)
    except Exception:
        logger.exception("order delivery %s could not be processed", delivery.delivery_id)
        return Outcome(503, "retry", "temporarily unavailable; please retry")


async def _apply_together(
    session: AsyncSession, parsed: list[_Parsed], outcomes: list[Outcome | None]
) -> None:
    """Insert the deliveries, then apply the new ones per shop; fills in their outcomes."""
    shops: dict[tuple[str, str], Shop | None] = {}
    by_shop: dict[int, tuple[Shop, list[_Parsed]]] = {}
    for one in parsed:
        key = (one.gate.platform, one.gate.domain)
        if key not in shops:
            shops[key] = await find_shop(session, one.gate)
        shop = shops[key]
        if shop is None or shop.status != ShopStatus.installed:
            continue  # goes alone: the shop's answer (404, 410) is the pipeline's to give
        by_shop.setdefault(shop.id, (shop, []))[1].append(one)

    for shop, group in by_shop.values():
        fresh = await _insert_deliveries(session, shop.id, group)
        new = {id(one) for one in fresh}
        for one in group:
            if id(one) not in new:
                outcomes[one.index] = Outcome(200, "duplicate")
        await apply_orders(session, shop, [one.order for one in fresh])
        for one in fresh:
            outcomes[one.index] = Outcome(200, "processed")


async def _insert_deliveries(
    session: AsyncSession, shop_id: int, group: list[_Parsed]
) -> list[_Parsed]:
    """Insert the group's deliveries in one statement; those that were new (the first of
    any delivery id sent twice in one batch)."""
    now = utcnow()
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for one in sorted(group, key=lambda one: one.delivery.delivery_id):  # a stable lock order
        delivery = one.delivery
        rows.setdefault(
            (delivery.source, delivery.delivery_id), delivery_row(shop_id, delivery, now)
        )
    inserted = await insert_deliveries(session, list(rows.values()))
    fresh: list[_Parsed] = []
    for one in group:
        key = one.delivery.delivery_id
        if key in inserted:
            inserted.discard(key)  # a second copy in this batch is a duplicate
            fresh.append(one)
    return fresh
