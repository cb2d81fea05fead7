from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigId, JSONType, TimestampMixin


class ComplianceRequest(TimestampMixin, Base):
    """A privacy request as ids and a hash only: the record itself must hold no personal data."""

    __tablename__ = "compliance_requests"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="RESTRICT"), index=True)
    topic: Mapped[str] = mapped_column(String(40))
    customer_id: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    payload_sha256: Mapped[str] = mapped_column(String(64))


class DataExport(TimestampMixin, Base):
    """What Stamp holds on one customer, assembled for a `customers/data_request`."""

    __tablename__ = "data_exports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="RESTRICT"), index=True)
    customer_id: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    export: Mapped[dict[str, Any]] = mapped_column(JSONType)
