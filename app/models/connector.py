"""Connectors beyond Klaviyo: outgoing webhooks, Mailchimp, Segment, and email consent.

Outgoing webhooks read the member-event outbox: each subscription has a cursor and one
delivery row per (subscription, event), so an event is never delivered under two ids and
a crashed worker leaves its deliveries visible. Mailchimp and Segment keep a per-member
mark like the Klaviyo sync, under their own kind, so each tool has its own backlog.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

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

from app.models.base import Base, BigId, JSONType, TimestampMixin, UTCDateTime


class SubscriptionStatus(StrEnum):
    active = "active"
    disabled = "disabled"  # Stamp stopped delivering; `disabled_reason` says why
    deleted = "deleted"  # unsubscribed (Zapier's DELETE); kept for the delivery log


class DeliveryStatus(StrEnum):
    pending = "pending"  # waiting for its first or next attempt
    delivered = "delivered"
    failed = "failed"  # gave up after a day of retries (replayable)


class WebhookSubscription(TimestampMixin, Base):
    """A URL a merchant or an integration (Zapier, Make) subscribed to Stamp events."""

    __tablename__ = "webhook_subscriptions"
    __table_args__ = (
        Index("ix_webhook_subscriptions_shop_id_status", "shop_id", "status"),
        CheckConstraint("status IN ('active', 'disabled', 'deleted')", name="status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="RESTRICT"))
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(JSONType)
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(20), default=SubscriptionStatus.active)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Every member event with an id at or below this has a delivery row (or was not wanted).
    event_cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OutgoingDelivery(TimestampMixin, Base):
    """One member event for one subscription: its attempts, last answer and next try."""

    __tablename__ = "outgoing_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "member_event_id"),
        Index("ix_outgoing_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="RESTRICT"), index=True)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE")
    )
    member_event_id: Mapped[int] = mapped_column(ForeignKey("member_events.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    response_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)


class ConnectorKind(StrEnum):
    mailchimp = "mailchimp"
    segment = "segment"


class ConnectorConnection(TimestampMixin, Base):
    """A shop's Mailchimp or Segment connection; secrets are Fernet ciphertext.

    Mailchimp: `secret_enc` is the API key, `settings` holds `server`, `audience_id` and
    `add_transactional`. Segment: `secret_enc` is the source write key (identify calls
    out, optional), `inbound_secret_enc` the webhook destination's shared secret, and
    `settings["events"]` maps track event names to custom action keys.
    """

    __tablename__ = "connector_connections"
    __table_args__ = (
        UniqueConstraint("shop_id", "kind"),
        CheckConstraint("kind IN ('mailchimp', 'segment')", name="kind"),
        CheckConstraint("status IN ('connected', 'revoked', 'disconnected')", name="status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="connected")
    secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    inbound_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ConnectorMemberSync(Base):
    """The change mark and hash of a member as last sent to one connector."""

    __tablename__ = "connector_member_syncs"

    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    member_id: Mapped[int] = mapped_column(
        ForeignKey("members.id", ondelete="CASCADE"), primary_key=True
    )
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="RESTRICT"), index=True)
    synced_mark: Mapped[datetime] = mapped_column(UTCDateTime())
    synced_hash: Mapped[str] = mapped_column(String(64))
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EmailConsent(Base):
    """A customer's email marketing consent as Shopify last told it (ids only, no email).

    Keyed by platform customer id, since consent can arrive before the member exists.
    """

    __tablename__ = "email_consents"
    __table_args__ = (UniqueConstraint("shop_id", "customer_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="RESTRICT"))
    customer_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(32))
    opt_in_level: Mapped[str | None] = mapped_column(String(32))
    consent_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
