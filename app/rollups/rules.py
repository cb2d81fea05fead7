"""Which entries count as issued or redeemed points: pure, shared by the upsert, the rebuild
and the tests' from-scratch computation."""

from __future__ import annotations

from datetime import UTC, date, datetime

from app.program.rules import EARNING_KINDS

# Earnings, imported balances and manual credits are "issued"; redemptions are "redeemed".
ISSUING_KINDS = (*sorted(EARNING_KINDS), "import", "adjust")
CANCELLED = "cancelled"
# Rows per shop-day: concurrent postings for different members rarely share one.
SLOTS = 8


def contribution(kind: str, status: str, points: int) -> tuple[int, int]:
    """(issued, redeemed) that one entry adds to its day."""
    issued = points if kind in ISSUING_KINDS and points > 0 and status != CANCELLED else 0
    redeemed = -points if kind == "redeem" else 0
    return issued, redeemed


def slot(member_id: int) -> int:
    return member_id % SLOTS


def utc_day(moment: datetime) -> date:
    """The UTC calendar day an entry counts on (what the database's date() gives)."""
    return moment.astimezone(UTC).date() if moment.tzinfo else moment.date()
