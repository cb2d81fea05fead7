"""Ledger shapes for the headless API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, model_validator

from app.members.schemas import MemberOut
from app.models import LedgerEntry

IdempotencyKey = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")]


class EntryOut(BaseModel):
    id: int
    points: int
    kind: str
    status: str
    reason: str | None
    source_type: str | None
    source_id: str | None
    created_at: datetime
    available_at: datetime | None

    @classmethod
    def of(cls, entry: LedgerEntry) -> EntryOut:
        return cls(
            id=entry.id,
            points=entry.points,
            kind=entry.kind,
            status=entry.status,
            reason=entry.reason,
            source_type=entry.source_type,
            source_id=entry.source_id,
            created_at=entry.created_at,
            available_at=entry.available_at,
        )


class ActivityPage(BaseModel):
    data: list[EntryOut]
    next_cursor: str | None


class PageQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=64)


class AdjustmentIn(BaseModel):
    points: int = Field(ge=-10_000_000, le=10_000_000, description="Signed, non-zero")
    reason: str = Field(min_length=1, max_length=500)
    idempotency_key: IdempotencyKey

    @model_validator(mode="after")
    def _non_zero(self) -> AdjustmentIn:
        if self.points == 0:
            raise ValueError("points must not be zero")
        return self


class AdjustmentOut(BaseModel):
    entry: EntryOut
    member: MemberOut


class CustomEventIn(BaseModel):
    event: str = Field(min_length=1, max_length=64, description="A custom action's key")
    customer_id: str | None = Field(default=None, min_length=1, max_length=64)
    email: str | None = Field(default=None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    idempotency_key: IdempotencyKey

    @model_validator(mode="after")
    def _someone(self) -> CustomEventIn:
        if not self.customer_id and not self.email:
            raise ValueError("give customer_id or email")
        return self


class CustomEventOut(BaseModel):
    points_awarded: int
    entry: EntryOut
    member: MemberOut
