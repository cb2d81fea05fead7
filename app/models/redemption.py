from __future__ import annotations

from datetime import datetime
from decimal import Decimal

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


class Redemption(TimestampMixin, Base):
    """Points spent on a reward, and the discount code it became.

    `pending` while the platform creates the code; then `issued`, later `used` or
    `expired`; `failed` when the platform refused (the points went back).
    """

    __tablename__ = "redemptions"
    __table_args__ = (
        UniqueConstraint("shop_id", "code"),
        UniqueConstraint("shop_id", "request_key"),
        Index("ix_redemptions_member_id", "member_id"),
        Index("ix_redemptions_shop_id_status_expires_at", "shop_id", "status", "expires_at"),
        CheckConstraint(
            "status IN ('pending', 'issued', 'used', 'expired', 'failed')", name="status"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="RESTRICT"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="RESTRICT"))
    request_key: Mapped[str] = mapped_column(String(255))
    request_sha256: Mapped[str] = mapped_column(String(64))
    reward_id: Mapped[str] = mapped_column(String(64))
    reward_name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    points_spent: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[Decimal | None] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(String(3))
    code: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    platform_discount_id: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    used_order_id: Mapped[str | None] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
