"""The batcher's lane: which deliveries go into which batch (the writing is faked)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from webhooks.batch import OrderBatcher
from webhooks.pipeline import Delivery, Outcome, ShopGate

GATE = ShopGate(platform="shopify", domain="batch.myshopify.com")


def delivery(name: str) -> Delivery:
    return Delivery(source="shopify", topic="orders/paid", delivery_id=name, body=b"{}")


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The delivery ids of each batch written; writing one takes a few loop turns."""
    written: list[list[str]] = []

    async def fake_process_orders(
        state: Any, batch: list[tuple[ShopGate, Delivery]], handlers: Any
    ) -> list[Outcome]:
        written.append([one.delivery_id for _, one in batch])
        for _ in range(5):
            await asyncio.sleep(0)
        return [Outcome(200, "processed") for _ in batch]

    monkeypatch.setattr("webhooks.batch.process_orders", fake_process_orders)
    return written


async def sender(batcher: OrderBatcher, names: list[str]) -> None:
    """One connection: sends its next delivery as soon as the last one is answered."""
    for name in names:
        assert await batcher.submit(GATE, delivery(name)) == Outcome(200, "processed")


async def two_senders_and_a_latecomer(batcher: OrderBatcher) -> None:
    """Senders a and b send three deliveries each; c sends one, a loop turn after them."""

    async def late() -> None:
        await asyncio.sleep(0)
        await sender(batcher, ["c1"])

    await asyncio.gather(
        sender(batcher, ["a1", "a2", "a3"]), sender(batcher, ["b1", "b2", "b3"]), late()
    )


async def test_senders_answered_by_a_batch_join_the_next_one(batches: list[list[str]]) -> None:
    # given a batcher that waits for deliveries still arriving (long enough for any loop)
    batcher = OrderBatcher(state=None, handlers={}, linger=0.05)  # type: ignore[arg-type]

    # when two senders send three deliveries each, and a third sender joins late
    await two_senders_and_a_latecomer(batcher)

    # then after the first batch, those answered wait for nobody: each round is one batch
    assert batches == [["a1", "b1"], ["c1", "a2", "b2"], ["a3", "b3"]]


async def test_without_lingering_the_latecomer_splits_the_rounds(
    batches: list[list[str]],
) -> None:
    # given a batcher that never waits for deliveries still arriving
    batcher = OrderBatcher(state=None, handlers={}, linger_steps=0)  # type: ignore[arg-type]

    # when the same senders send the same deliveries
    await two_senders_and_a_latecomer(batcher)

    # then the latecomer goes alone and the others follow in a batch of their own
    assert batches == [["a1", "b1"], ["c1"], ["a2", "b2"], ["a3", "b3"]]


class SleepSpy:
    """`asyncio` as `webhooks.batch` sees it, with every `sleep` it asks for recorded."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(seconds)


async def test_a_lone_delivery_is_written_at_once(
    batches: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a batcher with no load on it
    spy = SleepSpy()
    monkeypatch.setattr("webhooks.batch.asyncio", spy)
    batcher = OrderBatcher(state=None, handlers={})  # type: ignore[arg-type]

    # when one delivery comes, then another after its answer
    await sender(batcher, ["a1", "a2"])

    # then each is a batch of its own and neither waited for company
    assert batches == [["a1"], ["a2"]]
    assert spy.sleeps == []
