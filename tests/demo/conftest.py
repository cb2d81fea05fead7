"""The demo's tests run the real app with DEMO_MODE on, over ASGI, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from app.demo.seed import SeedResult, deliver, ensure_demo_shop, seed, seed_webhooks
from app.main import create_app
from app.models import Member
from app.models.base import utcnow
from app.settings import Settings
from app.state import State
from tests.conftest import _with_state, make_settings

BASE_URL = "https://stamp.test"


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Demo settings: DEMO_MODE on, Shopify's Admin API at the demo's own stand-in."""
    return make_settings(
        database_url,
        DEMO_MODE=True,
        SHOPIFY_ADMIN_URL=BASE_URL + "/demo/shopify-admin/{shop}",
    )


@pytest.fixture
async def state(settings: Settings, state: State) -> AsyncIterator[State]:
    """The test State, whose outbound client reaches the app itself (the Admin stand-in)."""
    holder: dict[str, Starlette] = {}

    async def asgi(scope, receive, send):  # type: ignore[no-untyped-def]
        await _with_state(holder["app"], demo_state)(scope, receive, send)

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=asgi), base_url=BASE_URL
    ) as outbound:
        demo_state = replace(state, http=outbound)
        holder["app"] = create_app(settings)
        yield demo_state


@pytest.fixture
async def seeded(client: httpx.AsyncClient, state: State) -> SeedResult:
    return await seed(client, state)


@pytest.fixture
async def one_shopper(client: httpx.AsyncClient, state: State) -> None:
    """Just the demo shop and Ada's account (customers/create): enough for form checks."""
    await ensure_demo_shop(state)
    hook = next(h for h in seed_webhooks(utcnow()) if h.topic == "customers/create")
    assert await deliver(client, state.settings, hook) == "processed"


async def member_by_email(session: AsyncSession, email: str) -> Member:
    await session.rollback()  # a fresh snapshot: see what the app's sessions committed
    result = await session.execute(select(Member).where(Member.email == email))
    return result.scalar_one()
