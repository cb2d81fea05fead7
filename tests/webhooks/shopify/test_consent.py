"""customers_email_marketing_consent/update: stored by customer id, newest wins, and the
member is marked changed so the Mailchimp sync sends them again."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import EmailConsent, Member
from app.settings import Settings
from tests.builders import create_member, create_shop, row_counts, shopify_webhook

TOPIC = "customers_email_marketing_consent/update"


def payload(state: str, at: str) -> dict[str, object]:
    return {
        "customer_id": 706405506930370084,
        "email_address": "bob@example.com",
        "email_marketing_consent": {
            "state": state,
            "opt_in_level": "single_opt_in",
            "consent_updated_at": at,
        },
    }


async def send(client: httpx.AsyncClient, settings: Settings, body: object) -> httpx.Response:
    raw, headers = shopify_webhook(settings, TOPIC, body)
    return await client.post("/webhooks/shopify", content=raw, headers=headers)


async def test_consent_is_stored_without_the_email_and_the_member_marked_changed(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    await create_member(session, shop, customer_id="706405506930370084", email="bob@example.com")

    response = await send(client, settings, payload("subscribed", "2026-11-20T10:00:00-05:00"))

    assert response.status_code == 200
    await session.rollback()
    consent = await session.scalar(select(EmailConsent))
    assert consent is not None
    assert (consent.customer_id, consent.state, consent.opt_in_level) == (
        "706405506930370084",
        "subscribed",
        "single_opt_in",
    )
    assert consent.consent_updated_at is not None
    assert consent.consent_updated_at.isoformat() == "2026-11-20T15:00:00+00:00"
    member = await session.scalar(select(Member))
    assert member is not None
    assert member.sync_dirty_at is not None


async def test_an_older_consent_arriving_late_does_not_overwrite_a_newer_one(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await create_shop(session, settings)
    await send(client, settings, payload("unsubscribed", "2026-11-21T10:00:00Z"))

    await send(client, settings, payload("subscribed", "2026-11-20T10:00:00Z"))

    await session.rollback()
    states = (await session.execute(select(EmailConsent.state))).scalars().all()
    assert states == ["unsubscribed"]


async def test_a_consent_payload_without_a_state_is_dead_lettered_not_stored(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await create_shop(session, settings)
    before = await row_counts(session)

    response = await send(client, settings, {"customer_id": 1, "email_marketing_consent": {}})

    assert response.status_code == 200
    after = await row_counts(session)
    assert after["email_consents"] == before["email_consents"] == 0
    assert after["dead_letters"] == before["dead_letters"] + 1
