"""Integrations: Klaviyo and Judge.me connect (checked first) and disconnect; Woo status."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.integrations.judgeme import service as judgeme_service
from app.models import IntegrationConnection, Platform
from app.settings import Settings
from app.state import State
from tests.admin.support import bearer, field_error
from tests.builders import create_shop, row_counts

KEY = "pk_live_0123456789abcdef"


@pytest.fixture
def klaviyo(settings: Settings) -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=settings.KLAVIYO_API_URL, assert_all_called=False) as router:
        yield router


async def test_klaviyo_connects_after_klaviyo_accepts_the_key_and_disconnects(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    klaviyo: respx.MockRouter,
    queue: object,
) -> None:
    shop = await create_shop(session, settings)
    klaviyo.get(path__regex=r"/api/.*").respond(200, json={"data": []})
    headers = bearer(settings, shop)

    connected = await client.post(
        "/admin/integrations/klaviyo/connect", data={"secret": KEY}, headers=headers
    )
    page = await client.get("/admin/integrations", headers=headers)
    disconnected = await client.post("/admin/integrations/klaviyo/disconnect", headers=headers)

    assert connected.status_code == 303
    assert "connected</span>" in page.text
    assert disconnected.status_code == 303
    await session.rollback()
    rows = list(
        await session.execute(
            select(
                IntegrationConnection.kind,
                IntegrationConnection.status,
                IntegrationConnection.secret_enc,
            )
        )
    )
    assert rows == [("klaviyo", "disconnected", None)]


async def test_a_malformed_or_refused_key_is_shown_and_nothing_is_stored(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    klaviyo: respx.MockRouter,
) -> None:
    shop = await create_shop(session, settings)
    klaviyo.get(path__regex=r"/api/.*").respond(401, json={"errors": [{"detail": "bad key"}]})
    headers = bearer(settings, shop)
    before = await row_counts(session)

    malformed = await client.post(
        "/admin/integrations/klaviyo/connect", data={"secret": "hello"}, headers=headers
    )
    refused = await client.post(
        "/admin/integrations/klaviyo/connect", data={"secret": KEY}, headers=headers
    )
    judgeme = await client.post(
        "/admin/integrations/judgeme/connect", data={"secret": " "}, headers=headers
    )

    assert malformed.status_code == 422
    assert field_error(malformed.text, "klaviyo") == (
        "A Klaviyo private API key starts with pk_ (Settings &gt; API keys in Klaviyo)"
    )
    assert refused.status_code == 422
    assert field_error(refused.text, "klaviyo") is not None
    assert judgeme.status_code == 422
    assert field_error(judgeme.text, "judgeme") == "The Judge.me API token is empty"
    assert await row_counts(session) == before


async def test_a_woocommerce_store_sees_its_connection(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings, domain="shop.example.com")
    shop.platform = Platform.woocommerce
    await session.commit()
    from tests.admin.support import sign_in

    await sign_in(client, settings, shop)
    page = await client.get("/admin/integrations")
    assert "Store <strong>shop.example.com</strong>" in page.text
    assert [f'id="{card}"' in page.text for card in ("webhooks", "mailchimp", "segment")] == [
        True,
        True,
        True,
    ]


async def test_judgeme_disconnects_and_forgets_the_token(
    client: httpx.AsyncClient, state: State, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    await judgeme_service.save_token(session, state.cipher, shop, "jm-token")
    await session.commit()

    response = await client.post(
        "/admin/integrations/judgeme/disconnect", headers=bearer(settings, shop)
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/admin/integrations?done=Judge.me+disconnected"
    await session.rollback()
    rows = list(
        await session.execute(
            select(IntegrationConnection.kind, IntegrationConnection.status).where(
                IntegrationConnection.secret_enc.is_(None)
            )
        )
    )
    assert rows == [("judgeme", "disconnected")]
