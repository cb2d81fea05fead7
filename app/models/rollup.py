from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Date, ForeignKey, SmallInteger
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class PointsDay(Base):
    """Points issued and redeemed per shop and UTC day, kept in the posting's transaction so
    the admin's figures read a few hundred rows instead of a million entries.

    Each shop-day is split over `slot` (member id modulo a few) so that concurrent postings
    for different members rarely wait on the same row; readers sum the slots.
    """

    __tablename__ = "points_days"

    shop_id: Mapped[int] = mapped_column(
        ForeignKey("shops.id", ondelete="RESTRICT"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    slot: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    issued: Mapped[int] = mapped_column(BigInteger, default=0)
    redeemed: Mapped[int] = mapped_column(BigInteger, default=0)
