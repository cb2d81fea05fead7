from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigId, TimestampMixin, UTCDateTime


class Platform(StrEnum):
    shopify = "shopify"
    woocommerce = "woocommerce"


class ShopStatus(StrEnum):
    installed = "installed"
    uninstalled = "uninstalled"
    redacted = "redacted"


class Shop(TimestampMixin, Base):
    """A merchant's store. Credentials are Fernet ciphertext, never plaintext."""

    __tablename__ = "shops"
    __table_args__ = (
        UniqueConstraint("platform", "domain"),
        CheckConstraint("status IN ('installed', 'uninstalled', 'redacted')", name="status"),
        CheckConstraint("platform IN ('shopify', 'woocommerce')", name="platform"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    platform: Mapped[str] = mapped_column(String(20), default=Platform.shopify)
    domain: Mapped[str] = mapped_column(String(255))
    platform_shop_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255))
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    iana_timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    status: Mapped[str] = mapped_column(String(20), default=ShopStatus.installed)
    scopes: Mapped[str | None] = mapped_column(Text)
    access_token_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    access_token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    refresh_token_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    refresh_token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    webhook_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    installed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    uninstalled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The history backfill sent at install: a lost job is found again by these marks.
    history_import_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    history_imported_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OAuthState(TimestampMixin, Base):
    """A nonce handed out with an install redirect; deleted when the callback uses it."""

    __tablename__ = "oauth_states"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    shop_domain: Mapped[str] = mapped_column(String(255))
