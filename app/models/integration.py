"""Connections to merchant tools (Klaviyo, Judge.me) and what Stamp has sent to or received
from them.

Only what cannot be derived is stored: the Klaviyo backlog is "members whose change mark
differs from the mark last sent" plus "events not yet marked sent", so a crashed worker
or a lost enqueue leaves the backlog visible and the next run sends it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigId, TimestampMixin, UTCDateTime


class IntegrationKind(StrEnum):
    klaviyo = "klaviyo"
    judgeme = "judgeme"


class ConnectionStatus(StrEnum):
    connected = "connected"
    revoked = "revoked"  # the tool refused our credentials; reconnecting resumes the sync
    disconnected = "disconnected"  # the merchant disconnected; the secret is gone


class IntegrationConnection(TimestampMixin, Base):
    """One shop's connection to one tool; the secret is Fernet ciphertext, never plaintext."""

    __tablename__ = "integration_connections"
    __table_args__ = (
        UniqueConstraint("shop_id", "kind"),
        CheckConstraint("kind IN ('klaviyo', 'judgeme')", name="kind"),
        CheckConstraint("status IN ('connected', 'revoked', 'disconnected')", name="status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=ConnectionStatus.connected)
    secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Klaviyo: every member event with an id at or below this was sent (or had no profile).
    event_cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    # Klaviyo: a sync run holds the shop until then, so two workers never send one backlog.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MemberSync(Base):
    """The change mark and property hash of the member's profile as last sent to Klaviyo.

    A member is in the backlog while its mark (`sync_dirty_at`, else `created_at`) differs
    from `synced_mark`; the mark read is stored, never the time of sending, so a change
    committed during a send is still seen as unsent.
    """

    __tablename__ = "member_syncs"

    member_id: Mapped[int] = mapped_column(
        ForeignKey("members.id", ondelete="CASCADE"), primary_key=True
    )
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="RESTRICT"), index=True)
    synced_mark: Mapped[datetime] = mapped_column(UTCDateTime())
    synced_hash: Mapped[str] = mapped_column(String(64))
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EventSync(Base):
    """A member event above the shop's cursor that Klaviyo has accepted.

    PostgreSQL can commit ids out of order, so the cursor only passes events older than a
    grace period; newer ones are marked here so they are never sent twice meanwhile.
    """

    __tablename__ = "event_syncs"

    event_id: Mapped[int] = mapped_column(
        ForeignKey("member_events.id", ondelete="CASCADE"), primary_key=True
    )
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="RESTRICT"), index=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReviewReward(TimestampMixin, Base):
    """A review that earned points: once per review, reversible, checked for deletion."""

    __tablename__ = "review_rewards"
    __table_args__ = (
        UniqueConstraint("shop_id", "source", "review_id"),
        Index(
            "ix_review_rewards_shop_id_member_id_product_id", "shop_id", "member_id", "product_id"
        ),
        CheckConstraint("status IN ('rewarded', 'reversed')", name="status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="RESTRICT"))
    source: Mapped[str] = mapped_column(String(20))
    review_id: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="RESTRICT"))
    product_id: Mapped[str | None] = mapped_column(String(64))
    points: Mapped[int] = mapped_column(Integer, default=0)
    media_points: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20), default="rewarded")
    reversed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
