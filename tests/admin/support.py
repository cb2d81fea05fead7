"""Helpers for the admin page tests: signing in either way, and reading pages back."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin import auth
from app.ledger import service as ledger
from app.models import (
    DeliveryStatus,
    MemberEvent,
    OutgoingDelivery,
    Shop,
    SubscriptionStatus,
    WebhookSubscription,
)
from app.models.base import utcnow
from app.settings import Settings
from app.state import State
from tests.builders import create_member
from tests.shops.support import session_token

OTHER = "other-shop.myshopify.com"
HOOK = "https://93.184.215.14/stamp"  # a public address: the SSRF guard needs no DNS for it
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def bearer(settings: Settings, shop: Shop) -> dict[str, str]:
    """Headers of an App Bridge fetch for `shop` (a fresh session token)."""
    return {"Authorization": f"Bearer {session_token(settings, shop.domain)}"}


async def sign_in(client: httpx.AsyncClient, settings: Settings, shop: Shop) -> str:
    """Open a login link for `shop` (the client keeps the cookie); returns the CSRF token."""
    link = auth.login_link(settings, shop)
    opened = await client.get(link)
    assert opened.status_code == 303, opened.text
    page = await client.get("/admin/import")
    assert page.status_code == 200, page.text
    found = _CSRF.search(page.text)
    assert found is not None
    return found.group(1)


def field_error(html: str, name: str) -> str | None:
    """The message shown next to field `name`, if any."""
    found = re.search(rf'id="{re.escape(name)}-error"[^>]*>([^<]*)<', html)
    return found.group(1) if found else None


async def subscription_with_delivery(
    session: AsyncSession, state: State, shop: Shop, *, status: str = SubscriptionStatus.active
) -> tuple[int, int]:
    """A subscription of `shop` and one failed delivery of the shop's first member event."""
    member = await create_member(session, shop, customer_id="1", email="ann@example.com")
    await ledger.post(session, shop.id, ledger.Posting(member.id, 50, "earn", f"o:{shop.id}"))
    subscription = WebhookSubscription(
        shop_id=shop.id,
        url=HOOK,
        events=["points.earned"],
        secret_enc=state.cipher.encrypt("whsec_x"),
        status=status,
        disabled_reason="The receiver failed for 24 hours" if status == "disabled" else None,
        created_at=utcnow(),
    )
    session.add(subscription)
    await session.flush()
    event_id = await session.scalar(
        select(MemberEvent.id).where(MemberEvent.shop_id == shop.id).order_by(MemberEvent.id)
    )
    assert event_id is not None
    delivery = OutgoingDelivery(
        shop_id=shop.id,
        subscription_id=subscription.id,
        member_event_id=event_id,
        event_type="points.earned",
        status=DeliveryStatus.failed,
        attempts=9,
        response_status=500,
        last_error="HTTP 500",
    )
    session.add(delivery)
    await session.commit()
    return subscription.id, delivery.id
