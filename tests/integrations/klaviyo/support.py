"""Shared helpers for the Klaviyo and Judge.me tests."""

from __future__ import annotations


class FakeTime:
    """A clock and a sleep that only move each other: waits are recorded, never waited."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 3))
        self.now += seconds
