"""Referrals: the friend's welcome codes, clicks on referral links, and referred orders.

Nothing here holds a shopper's IP, user agent, device id, address or email in clear:
they are kept as keyed hashes (`app.referrals.service.fingerprint`), enough to compare
and count, useless to anyone who reads the table without the secret.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy import UniqueConstraint as Unique
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigId, JSONType, Money, TimestampMixin, UTCDateTime


class Referral(TimestampMixin, Base):
    """A friend's order attributed to a referrer, with its risk score and reasons.

    `qualified` while the referrer's reward is pending inside the hold window, `completed`
    once it was released, `held` waiting for the merchant's review, `rejected` (blocked,
    not a first order, below the minimum, or refused in review), `cancelled` (refunded or
    cancelled inside the window). One per order and one per friend.
    """

    __tablename__ = "referrals"
    __table_args__ = (
        Unique("shop_id", "order_id"),
        Unique("shop_id", "friend_member_id"),
        Index("ix_referrals_shop_id_status_id", "shop_id", "status", "id"),
        Index("ix_referrals_referrer_member_id", "referrer_member_id"),
        CheckConstraint(
            "status IN ('qualified', 'completed', 'held', 'rejected', 'cancelled')",
            name="status",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="RESTRICT"))
    referrer_member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="RESTRICT"))
    friend_member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="RESTRICT"))
    friend_email_hash: Mapped[str | None] = mapped_column(String(64))
    ip_hash: Mapped[str | None] = mapped_column(String(64))
    order_id: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    risk_score: Mapped[int] = mapped_column(BigInteger, default=0)
    # [{"signal": "same_phone", "weight": 70, "reason": "..."}] in plain words
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    order_amount: Mapped[Decimal] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(String(3))
    reward_points: Mapped[int] = mapped_column(BigInteger, default=0)
    release_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(255))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ReferralClick(TimestampMixin, Base):
    """One visit to a referral link (app proxy), hashed; `by_referrer` when they clicked it."""

    __tablename__ = "referral_clicks"
    __table_args__ = (
        Index(
            "ix_referral_clicks_shop_id_referrer_member_id_clicked_at",
            "shop_id",
            "referrer_member_id",
            "clicked_at",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="RESTRICT"))
    referrer_member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="RESTRICT"))
    code: Mapped[str] = mapped_column(String(32))
    clicked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ip_hash: Mapped[str | None] = mapped_column(String(64))
    network_hash: Mapped[str | None] = mapped_column(String(64))  # /24 (IPv4) or /48 (IPv6)
    ua_hash: Mapped[str | None] = mapped_column(String(64))
    device_hash: Mapped[str | None] = mapped_column(String(64))
    referring_host: Mapped[str | None] = mapped_column(String(255))
    by_referrer: Mapped[bool] = mapped_column(default=False)


class ReferralOffer(TimestampMixin, Base):
    """The friend's single-use welcome code: one per referrer and device (or IP + browser)."""

    __tablename__ = "referral_offers"
    __table_args__ = (
        Unique("shop_id", "code"),
        Unique("shop_id", "referrer_member_id", "visitor_hash"),
        CheckConstraint("status IN ('pending', 'issued', 'failed')", name="status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="RESTRICT"))
    referrer_member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="RESTRICT"))
    visitor_hash: Mapped[str] = mapped_column(String(64))
    device_hash: Mapped[str | None] = mapped_column(String(64))
    ip_hash: Mapped[str | None] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    platform_discount_id: Mapped[str | None] = mapped_column(String(255))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MemberFingerprint(TimestampMixin, Base):
    """A hashed trait seen on a member's own orders or sessions (ip, device, address, phone).

    Referral fraud checks compare a friend's order with what the referrer has used
    before, and count referrals per IP, without keeping any of it in clear.
    """

    __tablename__ = "member_fingerprints"
    __table_args__ = (
        Unique("shop_id", "member_id", "kind", "value_hash"),
        Index("ix_member_fingerprints_shop_id_kind_value_hash", "shop_id", "kind", "value_hash"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="RESTRICT"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(16))
    value_hash: Mapped[str] = mapped_column(String(64))
