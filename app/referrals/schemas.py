"""Referral shapes for the headless API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.models.referral import Referral

Status = Literal["qualified", "completed", "held", "rejected", "cancelled"]


class ReferralQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Status | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 50
    cursor: str | None = None


class DecisionIn(BaseModel):
    """A merchant's review decision; the reason is kept on the referral."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=500)]


class ReasonOut(BaseModel):
    signal: str
    weight: int
    reason: str


class ReferralOut(BaseModel):
    id: int
    status: str
    order_id: str
    code: str
    method: str
    referrer_customer_id: str | None
    friend_customer_id: str | None
    risk_score: int
    reasons: list[ReasonOut]
    order_amount: str
    currency: str
    reward_points: int
    release_at: datetime | None
    decided_by: str | None
    decision_reason: str | None
    created_at: datetime

    @classmethod
    def of(
        cls, referral: Referral, referrer_customer_id: str | None, friend_customer_id: str | None
    ) -> ReferralOut:
        return cls(
            id=referral.id,
            status=referral.status,
            order_id=referral.order_id,
            code=referral.code,
            method=referral.method,
            referrer_customer_id=referrer_customer_id,
            friend_customer_id=friend_customer_id,
            risk_score=referral.risk_score,
            reasons=[ReasonOut.model_validate(r) for r in referral.reasons],
            order_amount=str(referral.order_amount),
            currency=referral.currency,
            reward_points=referral.reward_points,
            release_at=referral.release_at,
            decided_by=referral.decided_by,
            decision_reason=referral.decision_reason,
            created_at=referral.created_at,
        )


class ReferralPage(BaseModel):
    data: list[ReferralOut]
    next_cursor: str | None
