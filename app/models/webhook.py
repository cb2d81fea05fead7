from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigId, JSONType, UTCDateTime, utcnow


class WebhookDelivery(Base):
    """One delivery from a platform; the unique key is what makes a retry a no-op."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("shop_id", "source", "delivery_id"),
        Index("ix_webhook_deliveries_received_at", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="RESTRICT"))
    source: Mapped[str] = mapped_column(String(20))
    delivery_id: Mapped[str] = mapped_column(String(255))
    topic: Mapped[str] = mapped_column(String(100))
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    outcome: Mapped[str] = mapped_column(String(20), default="processed")


class DeadLetter(Base):
    """A verified payload we could not understand, kept whole so it can be replayed."""

    __tablename__ = "dead_letters"
    __table_args__ = (Index("ix_dead_letters_shop_id_resolved_at", "shop_id", "resolved_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_id: Mapped[int | None] = mapped_column(ForeignKey("shops.id", ondelete="RESTRICT"))
    source: Mapped[str] = mapped_column(String(20))
    topic: Mapped[str] = mapped_column(String(100))
    delivery_id: Mapped[str | None] = mapped_column(String(255))
    headers: Mapped[dict[str, Any]] = mapped_column(JSONType)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
