"""The referral review queue and the dead-letter list, worked from the admin."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import DeadLetter, LedgerEntry, Referral, Shop
from app.program.service import ensure_default_program
from app.settings import Settings
from app.state import State
from tests.admin.support import bearer, sign_in
from tests.builders import create_shop, row_counts
from tests.referrals.conftest import deliver, order_payload, referral_shop
from tests.referrals.test_attribution import RITA_ORDER, rita_has_ordered

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "shopify" / "orders_paid.json"


async def held_referral(state: State, session: AsyncSession, settings: Settings) -> Referral:
    shop, _ = await referral_shop(session, settings)
    await rita_has_ordered(state, shop)
    referral = await deliver(
        state,
        shop.id,
        order_payload(
            2009,
            607,
            "Rita.Referrer+2@gmail.com",
            phone="207-555-0100",
            landing_site="/?ref=RITA2345",
            **RITA_ORDER,
        ),
    )
    assert referral is not None
    assert referral.status == "held"
    return referral


async def test_a_held_referral_is_approved_from_the_queue(
    client: httpx.AsyncClient, state: State, session: AsyncSession, settings: Settings
) -> None:
    referral = await held_referral(state, session, settings)
    shop_id, referral_id = referral.shop_id, referral.id
    shop = await session.get(Shop, shop_id)
    assert shop is not None
    csrf = await sign_in(client, settings, shop)
    queue = await client.get("/admin/referrals")
    assert f'id="referral-{referral_id}"' in queue.text
    assert "Rita.Referrer+2@gmail.com".lower() in queue.text.lower()

    response = await client.post(
        f"/admin/referrals/{referral_id}/approve",
        data={"reason": "Spoke to Rita: her sister", "csrf_token": csrf},
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/admin/referrals?done=approved"
    await session.rollback()
    stored = await session.get(Referral, referral_id, populate_existing=True)
    assert stored is not None
    assert (stored.decided_by, stored.decision_reason) == (
        "admin:login-link",
        "Spoke to Rita: her sister",
    )
    rewards = list(await session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "referral")))
    assert [(e.points, e.status) for e in rewards] == [(500, "pending")]
    after = await client.get("/admin/referrals?done=approved")
    assert "Nothing to review." in after.text


async def test_a_decided_referral_cannot_be_decided_again(
    client: httpx.AsyncClient, state: State, session: AsyncSession, settings: Settings
) -> None:
    referral = await held_referral(state, session, settings)
    shop = await session.get(Shop, referral.shop_id)
    assert shop is not None
    headers = bearer(settings, shop)
    first = await client.post(f"/admin/referrals/{referral.id}/reject", headers=headers)
    before = await row_counts(session)
    again = await client.post(f"/admin/referrals/{referral.id}/approve", headers=headers)
    assert first.status_code == 303
    assert again.status_code == 409
    assert "is rejected, not held" in again.text
    assert await row_counts(session) == before


async def test_a_dead_letter_is_replayed_and_the_order_earns(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given an orders/paid delivery that was dead-lettered (say, a bug since fixed)
    shop = await create_shop(session, settings)
    await ensure_default_program(session, shop)
    letter = DeadLetter(
        shop_id=shop.id,
        source="shopify",
        topic="orders/paid",
        delivery_id="d-1",
        headers={},
        body=json.dumps(json.loads(FIXTURE.read_text())).encode(),
        error="KeyError: 'line_items'",
    )
    session.add(letter)
    await session.commit()
    letter_id = letter.id
    headers = bearer(settings, shop)
    listing = await client.get("/admin/dead-letters", headers=headers)
    assert f'id="dead-letter-{letter_id}"' in listing.text
    assert "KeyError: &#39;line_items&#39;" in listing.text

    # when the merchant replays it
    response = await client.post(f"/admin/dead-letters/{letter_id}/replay", headers=headers)

    # then it is processed: resolved, and the order earned its points
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/dead-letters?replayed=processed"
    await session.rollback()
    stored = await session.get(DeadLetter, letter_id, populate_existing=True)
    assert stored is not None
    assert stored.resolved_at is not None
    earned = list(
        await session.scalars(select(LedgerEntry.points).where(LedgerEntry.kind == "earn"))
    )
    assert earned == [72]
    again = await client.post(f"/admin/dead-letters/{letter_id}/replay", headers=headers)
    assert again.status_code == 404
