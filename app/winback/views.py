"""What other surfaces show of win-back, without importing the models' numpy and scipy.

Member JSON is read on hot paths (the widget, the API); importing the fitting code there
would cost seconds on a cold process.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.members.schemas import WinbackOut
from app.models.winback import WinbackState


async def winback_view(session: AsyncSession, member_id: int) -> WinbackOut | None:
    """The member JSON's `winback`: status and score, or None before the first scan."""
    found = (
        await session.execute(
            select(WinbackState.status, WinbackState.score).where(
                WinbackState.member_id == member_id
            )
        )
    ).first()
    return WinbackOut(status=found[0], score=found[1]) if found else None
