"""`GET /api/v1/winback`: the members a merchant should win back, best bets first."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import and_, or_, select
from starlette.routing import Route

from app.api.edge import ApiContext, ApiResult, endpoint
from app.api.openapi import Operation
from app.errors import AppError
from app.models import Member
from app.models.winback import WinbackState

Status = Literal["active", "at_risk", "lapsed", "one_time_lapsing"]


class WinbackQuery(BaseModel):
    status: Status = "at_risk"
    sort: Literal["score", "points_at_risk"] = "score"
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=128)


class WinbackMemberOut(BaseModel):
    customer_id: str | None
    email: str | None
    status: str
    score: float
    points_at_risk: int
    orders: int
    last_order_at: datetime
    expected_next_order_at: datetime | None
    reasons: list[str]


class WinbackPage(BaseModel):
    data: list[WinbackMemberOut]
    next_cursor: str | None


def _encode(value: float, state_id: int) -> str:
    return base64.urlsafe_b64encode(f"{value!r}|{state_id}".encode()).decode().rstrip("=")


def _decode(cursor: str | None) -> tuple[float, int] | None:
    """(sort value, state id) of the last row seen; a foreign cursor is a 400."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        value, state_id = raw.split("|")
        return float(value), int(state_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise AppError("The cursor is not one this API returned", code="invalid_cursor") from None


async def winback_list(ctx: ApiContext) -> ApiResult:
    """Members with a win-back status, highest score (or most points at risk) first."""
    query = ctx.query(WinbackQuery)
    column = WinbackState.score if query.sort == "score" else WinbackState.points_at_risk
    conditions = [WinbackState.shop_id == ctx.shop.id, WinbackState.status == query.status]
    after = _decode(query.cursor)
    if after is not None:
        value, state_id = after
        conditions.append(or_(column < value, and_(column == value, WinbackState.id > state_id)))
    rows = (
        await ctx.session.execute(
            select(WinbackState, Member.customer_id, Member.email)
            .join(Member, Member.id == WinbackState.member_id)
            .where(*conditions)
            .order_by(column.desc(), WinbackState.id)
            .limit(query.limit + 1)
        )
    ).all()
    page, more = rows[: query.limit], len(rows) > query.limit
    data = [
        WinbackMemberOut(
            customer_id=customer_id,
            email=email,
            status=state.status,
            score=state.score,
            points_at_risk=state.points_at_risk,
            orders=state.orders,
            last_order_at=state.last_order_at,
            expected_next_order_at=state.expected_next_order_at,
            reasons=list(state.reasons),
        )
        for state, customer_id, email in page
    ]
    next_cursor = None
    if more:
        last = page[-1][0]
        key = last.score if query.sort == "score" else float(last.points_at_risk)
        next_cursor = _encode(key, last.id)
    return WinbackPage(data=data, next_cursor=next_cursor)


routes = [Route("/api/v1/winback", endpoint(winback_list), methods=["GET"])]

operations = [
    Operation(
        "GET",
        "/api/v1/winback",
        "Members to win back",
        winback_list,
        query=WinbackQuery,
        response=WinbackPage,
    )
]
