from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigId, Money, TimestampMixin, UTCDateTime


class EntryKind(StrEnum):
    earn = "earn"
    redeem = "redeem"
    reverse = "reverse"
    expire = "expire"
    adjust = "adjust"
    import_ = "import"
    referral = "referral"
    review = "review"
    signup = "signup"
    birthday = "birthday"
    custom = "custom"


class EntryStatus(StrEnum):
    pending = "pending"
    available = "available"
    cancelled = "cancelled"


class LedgerEntry(TimestampMixin, Base):
    """Append-only. A correction is a new entry; the idempotency key makes replays no-ops."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("shop_id", "idempotency_key"),
        Index("ix_ledger_entries_member_id_id", "member_id", "id"),
        Index("ix_ledger_entries_shop_id_status_available_at", "shop_id", "status", "available_at"),
        # The admin's figures and charts read a shop's entries by date range.
        Index("ix_ledger_entries_shop_id_created_at", "shop_id", "created_at"),
        CheckConstraint("status IN ('pending', 'available', 'cancelled')", name="status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="RESTRICT"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="RESTRICT"))
    points: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=EntryStatus.available)
    source_type: Mapped[str | None] = mapped_column(String(40))
    source_id: Mapped[str | None] = mapped_column(String(255))
    program_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("program_versions.id", ondelete="RESTRICT")
    )
    idempotency_key: Mapped[str] = mapped_column(String(255))
    amount: Mapped[Decimal | None] = mapped_column(Money())
    currency: Mapped[str | None] = mapped_column(String(3))
    reason: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(255))
    available_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
