from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigId, TimestampMixin, UTCDateTime


class Member(TimestampMixin, Base):
    """A shopper in a shop's program. Balances are caches of the ledger, updated atomically."""

    __tablename__ = "members"
    __table_args__ = (
        UniqueConstraint("shop_id", "customer_id"),
        UniqueConstraint("shop_id", "referral_code"),
        Index("ix_members_shop_id_email", "shop_id", "email"),
        Index("ix_members_shop_id_created_at", "shop_id", "created_at"),  # admin: new members
        # One guest member per email: a guest has no customer id to be unique on.
        Index(
            "uq_members_guest_email",
            "shop_id",
            "email",
            unique=True,
            sqlite_where=text("customer_id IS NULL"),
            postgresql_where=text("customer_id IS NULL"),
        ),
        CheckConstraint("pending_points >= 0", name="pending_non_negative"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="RESTRICT"))
    customer_id: Mapped[str | None] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(320))
    first_name: Mapped[str | None] = mapped_column(String(255))
    last_name: Mapped[str | None] = mapped_column(String(255))
    phone: Mapped[str | None] = mapped_column(String(64))
    is_account: Mapped[bool] = mapped_column(Boolean, default=False)
    birthday: Mapped[date | None] = mapped_column(Date)
    referral_code: Mapped[str | None] = mapped_column(String(32))
    points_balance: Mapped[int] = mapped_column(BigInteger, default=0)
    pending_points: Mapped[int] = mapped_column(BigInteger, default=0)
    lifetime_points: Mapped[int] = mapped_column(BigInteger, default=0)
    tier_name: Mapped[str | None] = mapped_column(String(64))
    last_activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set by the expiry job so the Klaviyo sync can say "N points expire on D".
    expiring_points: Mapped[int] = mapped_column(BigInteger, default=0)
    expiring_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sync_dirty_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    redacted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
