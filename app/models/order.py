from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigId, Money, TimestampMixin, UTCDateTime


class Order(TimestampMixin, Base):
    """What Stamp knows of a platform order: the basis it earned on and what was reversed.

    Refund maths needs the earning basis and points of the original award, so they are
    kept here, set once when the order earns.
    """

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("shop_id", "order_id"),
        Index("ix_orders_shop_id_member_id", "shop_id", "member_id"),
        Index("ix_orders_shop_id_placed_at", "shop_id", "placed_at"),  # admin analytics
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="RESTRICT"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="RESTRICT"))
    order_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    merchandise_amount: Mapped[Decimal] = mapped_column(Money())
    total_amount: Mapped[Decimal] = mapped_column(Money())
    refunded_merchandise: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0"))
    points_earned: Mapped[int] = mapped_column(BigInteger, default=0)
    points_reversed: Mapped[int] = mapped_column(BigInteger, default=0)
    program_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("program_versions.id", ondelete="RESTRICT")
    )
    is_test: Mapped[bool] = mapped_column(Boolean, default=False)
    source_name: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="open")
    placed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OrderRefund(TimestampMixin, Base):
    """A refund's merchandise amount, kept so reversals are cumulative and order-independent.

    A refund may arrive before the order's earning (webhooks have no order); the
    reversal is recomputed from all refunds whenever either side arrives.
    """

    __tablename__ = "order_refunds"
    __table_args__ = (
        UniqueConstraint("shop_id", "refund_id"),
        Index("ix_order_refunds_shop_id_order_id", "shop_id", "order_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="RESTRICT"))
    order_id: Mapped[str] = mapped_column(String(64))
    refund_id: Mapped[str] = mapped_column(String(64))
    merchandise_amount: Mapped[Decimal] = mapped_column(Money())
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
