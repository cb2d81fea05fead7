"""Win-back tables: each shop's fitted model, each member's current status, and its history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigId, JSONType, TimestampMixin, UTCDateTime


class WinbackModel(TimestampMixin, Base):
    """One row per shop: the score its holdout chose, parameters, AUCs, the cycle tau.

    `incentive` is the shop's optional automatic offer for members who become at risk:
    `{"kind": "points", "points": N, "holdout_share": 0.2}` or null.
    """

    __tablename__ = "winback_models"
    __table_args__ = (UniqueConstraint("shop_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="RESTRICT"))
    chosen: Mapped[str] = mapped_column(String(32))
    tau_days: Mapped[float] = mapped_column(Float)
    model: Mapped[dict[str, Any]] = mapped_column(JSONType)
    incentive: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    fitted_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WinbackState(TimestampMixin, Base):
    """A member's current win-back status, rewritten by each scan (history is elsewhere)."""

    __tablename__ = "winback_states"
    __table_args__ = (
        UniqueConstraint("member_id"),
        Index("ix_winback_states_shop_id_status_score", "shop_id", "status", "score"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="RESTRICT"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(String(20))
    score: Mapped[float] = mapped_column(Float)
    orders: Mapped[int] = mapped_column(BigInteger)
    last_order_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expected_next_order_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    points_at_risk: Mapped[int] = mapped_column(BigInteger, default=0)
    reasons: Mapped[list[str]] = mapped_column(JSONType)
    # "treated" | "holdout" once an incentive decision was made for the current flag.
    arm: Mapped[str | None] = mapped_column(String(10))
    scanned_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WinbackStatusChange(TimestampMixin, Base):
    """Append-only: each status change with its score and reasons, so "flagged on", "won
    back on" and revenue after the flag can be reported. Never updated or deleted."""

    __tablename__ = "winback_status_changes"
    __table_args__ = (Index("ix_winback_status_changes_shop_id_member_id", "shop_id", "member_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="RESTRICT"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="RESTRICT"))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    score: Mapped[float] = mapped_column(Float)
    points_at_risk: Mapped[int] = mapped_column(BigInteger, default=0)
    reasons: Mapped[list[str]] = mapped_column(JSONType)
    arm: Mapped[str | None] = mapped_column(String(10))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
