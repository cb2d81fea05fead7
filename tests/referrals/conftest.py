"""Referral test harness: the engine plus the referral hooks, wired as the webhook will be.

Until the referral migration lands, the referral tables are created here (no-op once the
migration has made them).
"""

from __future__ import annotations

import copy
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import unit_of_work
from app.events import OrderPaid
from app.ledger import engine
from app.models import LedgerEntry, Member, Order, Shop
from app.models.referral import MemberFingerprint, Referral, ReferralClick, ReferralOffer
from app.program.config import ReferralRule
from app.program.service import current_config, ensure_default_program, save_program
from app.referrals import service
from app.settings import Settings
from app.state import State
from tests.builders import create_member, create_shop
from webhooks.shopify.normalise import order_event

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "shopify" / "orders_paid.json"
TABLES = [t.__table__ for t in (Referral, ReferralClick, ReferralOffer, MemberFingerprint)]


def order_payload(
    order_id: int,
    customer_id: int,
    email: str,
    *,
    phone: str | None = None,
    ip: str = "198.51.100.7",
    user_agent: str = "Mozilla/5.0 (Friend)",
    address1: str = "9 Elm Road",
    zip_code: str = "04102",
    landing_site: str | None = None,
    referring_site: str | None = None,
    attributes: dict[str, str] | None = None,
    codes: tuple[str, ...] = (),
    created_at: str = "2026-03-02T10:00:00+00:00",
) -> dict[str, Any]:
    """The real-shaped `orders/paid` fixture (72.00 merchandise), as another buyer."""
    payload: dict[str, Any] = copy.deepcopy(json.loads(FIXTURE.read_text()))
    address = {
        **payload["shipping_address"],
        "address1": address1,
        "zip": zip_code,
        "phone": phone,
        "customer_id": customer_id,
    }
    payload.update(
        id=order_id,
        name=f"#{order_id}",
        email=email,
        contact_email=email,
        phone=phone,
        browser_ip=ip,
        client_details={**payload["client_details"], "browser_ip": ip, "user_agent": user_agent},
        landing_site=landing_site,
        referring_site=referring_site,
        note_attributes=[{"name": k, "value": v} for k, v in (attributes or {}).items()],
        discount_codes=[{"code": c, "amount": "8.00", "type": "percentage"} for c in codes],
        shipping_address=address,
        billing_address=address,
        created_at=created_at,
        processed_at=created_at,
    )
    payload["customer"] = {
        **payload["customer"],
        "id": customer_id,
        "email": email,
        "phone": phone,
        "admin_graphql_api_id": f"gid://shopify/Customer/{customer_id}",
    }
    return payload


async def deliver(
    state: State, shop_id: int, payload: dict[str, Any], now: datetime | None = None
) -> Referral | None:
    """orders/paid through the engine and the referral hook, in one unit of work."""
    async with unit_of_work(state.sessionmaker) as session:
        shop = await session.get(Shop, shop_id)
        assert shop is not None
        event = order_event("orders/paid", payload)
        assert isinstance(event, OrderPaid)
        await engine.apply(session, shop, event)
        order = await session.scalar(
            select(Order).where(Order.shop_id == shop_id, Order.order_id == event.order_id)
        )
        assert order is not None
        member = await session.get(Member, order.member_id) if order.member_id else None
        return await service.attribute_order(
            session, shop, event, member, order, service.order_signals(payload), now=now
        )


async def referral_shop(
    session: AsyncSession, settings: Settings, **rule: Any
) -> tuple[Shop, Member]:
    """A USD shop with referrals on (500 points, 10% friend offer) and Rita the referrer."""
    shop = await create_shop(session, settings)
    await ensure_default_program(session, shop)
    config = await current_config(session, shop)
    values: dict[str, Any] = {
        "enabled": True,
        "referrer_points": 500,
        "friend_discount_value": Decimal(10),
        **rule,
    }
    await save_program(
        session, shop, config.model_copy(update={"referral": ReferralRule(**values)}), "tests"
    )
    await session.commit()
    rita = await create_member(
        session,
        shop,
        customer_id="500",
        email="rita.referrer@gmail.com",
        phone="+1 (207) 555-0100",
        referral_code="RITA2345",
        is_account=True,
    )
    return shop, rita


async def ledger_rows(session: AsyncSession) -> list[tuple[int, str, int, str, str]]:
    session.expunge_all()  # arranged objects keep their values
    await session.rollback()
    result = await session.execute(select(LedgerEntry).order_by(LedgerEntry.id))
    return [(e.member_id, e.kind, e.points, e.status, e.idempotency_key) for e in result.scalars()]


async def referrals(session: AsyncSession) -> list[Referral]:
    session.expunge_all()  # arranged objects keep their values
    await session.rollback()
    result = await session.execute(
        select(Referral).order_by(Referral.id).execution_options(populate_existing=True)
    )
    return list(result.scalars())


async def no_drift(session: AsyncSession) -> None:
    session.expunge_all()  # arranged objects keep their values
    await session.rollback()
    assert await engine.verify(session) == []
