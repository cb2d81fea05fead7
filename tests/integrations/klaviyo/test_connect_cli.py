"""`stamp connect klaviyo`: the key is checked before anything is saved."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from app.integrations.connect_cli import connect_cli
from app.models.integration import IntegrationConnection
from app.settings import Settings, get_settings
from app.state import State
from tests.builders import DOMAIN, create_member, create_shop, row_counts

KEY = "pk_cli_test_0123456789abcdef"


@pytest.fixture
def klaviyo() -> Iterator[respx.MockRouter]:
    with respx.mock(
        base_url="https://a.klaviyo.com", assert_all_mocked=True, assert_all_called=False
    ) as router:
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


async def test_a_bad_key_is_refused_with_klaviyos_reason_and_nothing_is_saved(
    klaviyo: respx.MockRouter, runner: CliRunner, session: AsyncSession, settings: Settings
) -> None:
    # given Klaviyo does not know the key
    await create_shop(session, settings)
    before = await row_counts(session)
    check = klaviyo.get("/api/profiles").mock(
        return_value=httpx.Response(
            401, json={"errors": [{"detail": "Incorrect authentication credentials."}]}
        )
    )

    # when the merchant connects with it
    code, output = await run(runner, "klaviyo", "--shop", DOMAIN, "--key", KEY)

    # then one call was made, the refusal explained, and nothing saved
    assert code == 1
    assert check.call_count == 1
    assert "Not connected: Klaviyo refused the private key (401: Incorrect authentication" in (
        " ".join(output.split())
    )
    assert await row_counts(session) == before


async def test_a_good_key_is_saved_encrypted_and_the_first_sync_is_queued(
    klaviyo: respx.MockRouter,
    runner: CliRunner,
    state: State,
    session: AsyncSession,
    settings: Settings,
    queue: Any,
) -> None:
    shop = await create_shop(session, settings)
    await create_member(session, shop, email="ada@example.com")
    klaviyo.get("/api/profiles").mock(return_value=httpx.Response(200, json={"data": []}))

    code, output = await run(runner, "klaviyo", "--shop", DOMAIN, "--key", KEY)
    status_code, status_output = await run(runner, "status", "--shop", DOMAIN)

    assert code == 0, output
    await session.rollback()
    stored = (await session.execute(select(IntegrationConnection))).scalar_one()
    assert stored.secret_enc is not None
    assert state.cipher.decrypt(stored.secret_enc) == KEY
    assert [(task.name, task.args) for task in queue.pending()] == [("sync_klaviyo", (shop.id,))]
    assert status_code == 0
    shown = json.loads(status_output)
    assert (shown["status"], shown["backlog"]) == ("connected", {"profiles": 1, "events": 0})


async def test_an_unknown_shop_exits_2(runner: CliRunner, session: AsyncSession) -> None:
    code, output = await run(runner, "klaviyo", "--shop", "nobody.myshopify.com", "--key", KEY)

    assert code == 2
    assert "No shop 'nobody.myshopify.com' is known to Stamp." in output
