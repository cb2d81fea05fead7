"""Member JSON, exactly as design.md fixes it for every surface."""

from __future__ import annotations

from pydantic import BaseModel


class NextTierOut(BaseModel):
    name: str
    points_needed: int


class TierOut(BaseModel):
    name: str
    multiplier: str
    next: NextTierOut | None


class WinbackOut(BaseModel):
    status: str
    score: float | None


class MemberOut(BaseModel):
    customer_id: str | None
    email: str | None
    points_balance: int
    pending_points: int
    lifetime_points: int
    tier: TierOut | None
    referral_url: str | None
    winback: WinbackOut | None
