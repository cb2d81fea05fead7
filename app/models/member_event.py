from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigId, JSONType, TimestampMixin, UTCDateTime


class MemberEvent(TimestampMixin, Base):
    """Something a member did or got, recorded in the same transaction as its cause.

    This is the outbox for integrations (Klaviyo events, outgoing webhooks): a sync job
    reads unsent rows; `unique_id` is stable, so a re-sent event never doubles downstream.
    """

    __tablename__ = "member_events"
    __table_args__ = (
        UniqueConstraint("shop_id", "unique_id"),
        Index("ix_member_events_shop_id_id", "shop_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="RESTRICT"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(64))
    unique_id: Mapped[str] = mapped_column(String(255))
    properties: Mapped[dict[str, Any]] = mapped_column(JSONType)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
