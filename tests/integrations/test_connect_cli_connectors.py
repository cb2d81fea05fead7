"""`stamp connect mailchimp|segment|webhooks`: checked before anything is saved."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from app.integrations.connect_cli import connect_cli
from app.models import ConnectorConnection
from app.program.config import CustomActionRule
from app.program.service import current_config, ensure_default_program, save_program
from app.settings import Settings, get_settings
from tests.builders import DOMAIN, create_shop, row_counts

KEY = "0123456789abcdef0123456789abcdef-us6"
BASE = "https://us6.api.mailchimp.com/3.0"


@pytest.fixture
def mailchimp() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_mocked=True, assert_all_called=False) as router:
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


async def test_mailchimp_without_an_audience_lists_them_and_saves_nothing(
    mailchimp: respx.MockRouter, runner: CliRunner, session: AsyncSession, settings: Settings
) -> None:
    await create_shop(session, settings)
    mailchimp.get("/lists").respond(200, json={"lists": [{"id": "a1b2", "name": "Shop list"}]})
    before = await row_counts(session)

    code, output = await run(runner, "mailchimp", "--shop", DOMAIN, "--key", KEY)

    assert code == 1
    assert "a1b2  Shop list" in output
    assert await row_counts(session) == before


async def test_mailchimp_with_a_refused_key_says_why_and_saves_nothing(
    mailchimp: respx.MockRouter, runner: CliRunner, session: AsyncSession, settings: Settings
) -> None:
    await create_shop(session, settings)
    mailchimp.get("/ping").respond(401, json={"title": "API Key Invalid", "detail": "Bad key"})
    before = await row_counts(session)

    code, output = await run(
        runner, "mailchimp", "--shop", DOMAIN, "--key", KEY, "--audience", "a1b2"
    )

    assert code == 1
    assert "Bad key" in output
    assert await row_counts(session) == before


async def test_mailchimp_connects_with_a_checked_key_and_audience(
    mailchimp: respx.MockRouter, runner: CliRunner, session: AsyncSession, settings: Settings
) -> None:
    await create_shop(session, settings)
    mailchimp.get("/ping").respond(200, json={})
    mailchimp.get("/lists/a1b2").respond(200, json={"id": "a1b2"})
    mailchimp.get("/lists/a1b2/merge-fields").respond(
        200,
        json={
            "merge_fields": [
                {"tag": t} for t in ("STAMP_PTS", "STAMP_TIER", "STAMP_REF", "STAMP_WB")
            ]
        },
    )

    code, output = await run(
        runner, "mailchimp", "--shop", DOMAIN, "--key", KEY, "--audience", "a1b2"
    )

    assert code == 0, output
    connection = await session.scalar(select(ConnectorConnection))
    assert connection is not None
    assert connection.settings == {
        "server": "us6",
        "audience_id": "a1b2",
        "add_transactional": False,
    }
    assert connection.secret_enc is not None
    assert KEY.encode() not in connection.secret_enc


async def test_segment_prints_the_url_and_secret_or_refuses_unknown_actions(
    runner: CliRunner, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    await ensure_default_program(session, shop)
    config = await current_config(session, shop)
    action = CustomActionRule(key="left_review", name="Left a review", points=25)
    await save_program(session, shop, config.model_copy(update={"custom_actions": (action,)}), "t")
    await session.commit()
    shop_id = shop.id
    before = await row_counts(session)

    refused, refusal = await run(
        runner, "segment", "--shop", DOMAIN, "--event", "Product Reviewed=nope"
    )
    assert (refused, await row_counts(session)) == (1, before)
    assert "No custom action 'nope'" in refusal

    code, output = await run(
        runner, "segment", "--shop", DOMAIN, "--event", "Product Reviewed=left_review"
    )
    assert code == 0, output
    assert f"https://stamp.test/webhooks/segment/{shop_id}" in output
    assert "Shared secret: " in output
    assert "Identify calls are off." in output
