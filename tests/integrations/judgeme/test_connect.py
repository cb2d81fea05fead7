"""Connecting Judge.me (`stamp connect judgeme`), and the check for deleted reviews."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from app.db import unit_of_work
from app.integrations.connect_cli import connect_cli
from app.integrations.judgeme import service
from app.integrations.judgeme.reviews import review_from_payload
from app.ledger.engine import verify
from app.models import Shop
from app.models.integration import IntegrationConnection, ReviewReward
from app.settings import Settings, get_settings
from app.state import State
from tests.builders import DOMAIN, create_shop, row_counts
from tests.integrations.judgeme.support import TOKEN, balance, connected_shop, entries, review

JUDGEME = "https://judge.me/api/v1"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def judgeme() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=JUDGEME, assert_all_mocked=True, assert_all_called=False) as router:
        yield router


@pytest.fixture
def runner(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("DATABASE_URL", settings.DATABASE_URL)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


async def run(runner: CliRunner, *args: str) -> tuple[int, str]:
    result = await asyncio.to_thread(runner.invoke, connect_cli, list(args))
    return result.exit_code, result.output


async def test_connect_registers_both_webhooks_then_stores_the_token_encrypted(
    judgeme: respx.MockRouter,
    runner: CliRunner,
    state: State,
    session: AsyncSession,
    settings: Settings,
) -> None:
    # given an installed shop, and Judge.me accepting webhooks
    await create_shop(session, settings)
    hooks = judgeme.post("/webhooks").mock(return_value=httpx.Response(200, json={}))

    # when the merchant connects Judge.me from the terminal
    code, output = await run(runner, "judgeme", "--shop", DOMAIN, "--token", TOKEN)

    # then both review webhooks point at Stamp and the token is stored encrypted
    assert code == 0, output
    assert [json.loads(call.request.content) for call in hooks.calls] == [
        {"webhook": {"key": "review/created", "url": "https://stamp.test/webhooks/judgeme"}},
        {"webhook": {"key": "review/updated", "url": "https://stamp.test/webhooks/judgeme"}},
    ]
    assert dict(hooks.calls[0].request.url.params) == {"shop_domain": DOMAIN, "api_token": TOKEN}
    await session.rollback()
    stored = (await session.execute(select(IntegrationConnection))).scalar_one()
    assert (stored.kind, stored.status) == ("judgeme", "connected")
    assert stored.secret_enc is not None
    assert TOKEN.encode() not in stored.secret_enc
    assert state.cipher.decrypt(stored.secret_enc) == TOKEN


async def test_a_refused_token_is_reported_and_nothing_is_saved(
    judgeme: respx.MockRouter, runner: CliRunner, session: AsyncSession, settings: Settings
) -> None:
    await create_shop(session, settings)
    before = await row_counts(session)
    judgeme.post("/webhooks").mock(return_value=httpx.Response(401, json={"error": "no"}))

    code, output = await run(runner, "judgeme", "--shop", DOMAIN, "--token", "wrong")

    assert code == 1
    assert "Not connected: Judge.me refused the API token (401)" in output
    assert await row_counts(session) == before


async def rewarded(state: State, shop_id: int, item: dict[str, object]) -> None:
    async with unit_of_work(state.sessionmaker) as uow:
        shop = await uow.get(Shop, shop_id)
        assert shop is not None
        await service.apply_review(uow, shop, review_from_payload(item))


async def test_a_deleted_review_loses_its_points_at_the_next_check(
    judgeme: respx.MockRouter, state: State, session: AsyncSession, settings: Settings
) -> None:
    # given a photo review that earned 75 points, then was deleted on Judge.me
    shop = await connected_shop(session, settings, state)
    await rewarded(state, shop.id, review(pictures=True))
    lookup = judgeme.get("/reviews/1001").mock(return_value=httpx.Response(404))

    # when the periodic check runs (twice the same day)
    first = await service.check_rewarded_reviews(state, shop.id, NOW)
    second = await service.check_rewarded_reviews(state, shop.id, NOW)

    # then the points were reversed once and the review asked about once
    assert (first, second) == (1, 0)
    assert lookup.call_count == 1
    assert await entries(session) == [
        ("review", 50, "review:1001:earn"),
        ("review", 25, "review:1001:media"),
        ("reverse", -75, "review:1001:reverse"),
    ]
    assert await balance(session) == 0
    assert await verify(session) == []


async def test_a_review_still_published_keeps_its_points_and_is_checked_daily(
    judgeme: respx.MockRouter, state: State, session: AsyncSession, settings: Settings
) -> None:
    shop = await connected_shop(session, settings, state)
    await rewarded(state, shop.id, review())
    lookup = judgeme.get("/reviews/1001").mock(
        return_value=httpx.Response(200, json={"review": review()})
    )

    reversed_count = await service.check_rewarded_reviews(state, shop.id, NOW)

    assert reversed_count == 0
    assert lookup.call_count == 1
    assert await balance(session) == 50
    await session.rollback()
    reward = (await session.execute(select(ReviewReward))).scalar_one()
    assert reward.checked_at == NOW
