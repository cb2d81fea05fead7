from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigId, JSONType, TimestampMixin


class ProgramVersion(TimestampMixin, Base):
    """An immutable snapshot of a shop's program; every change is a new version."""

    __tablename__ = "program_versions"
    __table_args__ = (UniqueConstraint("shop_id", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="RESTRICT"))
    version: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_by: Mapped[str] = mapped_column(String(255), default="system")
