"""Reward and redemption shapes for the headless API."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field

from app.ledger.schemas import IdempotencyKey


class RewardOut(BaseModel):
    id: str
    name: str
    kind: str
    points_cost: int
    value: Decimal | None
    max_value: Decimal | None
    affordable: bool | None
    locked_reason: str | None


class RewardList(BaseModel):
    data: list[RewardOut]
    next_cursor: str | None = None


class RewardQuery(BaseModel):
    customer_id: str | None = Field(default=None, min_length=1, max_length=64)


class RedemptionIn(BaseModel):
    customer_id: str = Field(min_length=1, max_length=64)
    reward_id: str = Field(min_length=1, max_length=64)
    idempotency_key: IdempotencyKey
    points: int | None = Field(
        default=None, ge=1, le=10_000_000, description="Variable rewards: points to spend"
    )


class RedemptionOut(BaseModel):
    id: int
    code: str
    reward_id: str
    points_spent: int
    value: Decimal | None
    currency: str
    status: str
    expires_at: datetime | None
