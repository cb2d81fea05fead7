"""The `stamp` CLI against a real database (each test gets both SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from app.cli import cli
from app.ledger import service as ledger
from app.models import ApiKey, Member
from app.settings import Settings, get_settings
from tests.builders import create_member, create_shop


@pytest.fixture
def runner(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("DATABASE_URL", settings.DATABASE_URL)
    get_settings.cache_clear()
    yield CliRunner()  # type: ignore[misc]
    get_settings.cache_clear()


async def run(runner: CliRunner, *args: str) -> tuple[int, str]:
    result = await asyncio.to_thread(runner.invoke, cli, list(args))
    return result.exit_code, result.output


async def test_apikey_create_prints_the_key_last_and_stores_only_its_hash(
    runner: CliRunner, session: AsyncSession, settings: Settings
) -> None:
    await create_shop(session, settings)

    code, output = await run(runner, "apikey", "create", "--shop", "some-shop.myshopify.com")

    assert code == 0
    key = output.strip().splitlines()[-1]
    assert key.startswith("stamp_sk_")
    await session.rollback()
    stored = (await session.execute(select(ApiKey))).scalar_one()
    assert key not in (stored.key_hash, stored.prefix)
    code, listing = await run(runner, "apikey", "list", "--shop", "some-shop.myshopify.com")
    assert code == 0
    assert f"{stored.id}\t{stored.prefix}" in listing


async def test_apikey_for_an_unknown_shop_fails_and_writes_nothing(
    runner: CliRunner, session: AsyncSession
) -> None:
    code, output = await run(runner, "apikey", "create", "--shop", "nobody.myshopify.com")

    assert code == 2
    assert "No shop" in output
    await session.rollback()
    assert (await session.execute(select(ApiKey))).scalars().all() == []


async def test_ledger_verify_passes_then_reports_drift(
    runner: CliRunner, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    member = await create_member(session, shop, customer_id="1")
    await ledger.post(session, shop.id, ledger.Posting(member.id, 50, "earn", "order:1:earn"))
    await session.commit()

    clean = await run(runner, "ledger", "verify")
    await session.execute(update(Member).values(points_balance=51))
    await session.commit()
    drifted = await run(runner, "ledger", "verify")

    assert clean[0] == 0
    assert "Ledger verified" in clean[1]
    assert drifted[0] == 1
    assert (
        "cached balance/pending/lifetime (51, 0, 50) but entries sum to (50, 0, 50)" in (drifted[1])
    )
