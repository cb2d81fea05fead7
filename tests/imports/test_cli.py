"""`stamp import points` and `stamp import history` as a terminal user runs them.

The commands build their own State from the environment, so each run points
DATABASE_URL at the test database and runs in a thread (the command owns its event loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner, Result

from app.imports.cli import import_cli
from app.settings import Settings, get_settings
from tests.builders import DOMAIN, create_shop, row_counts
from tests.imports.support import FakeShopify, balances

GOOD = "email,points,tier\nada@example.com,120,Silver\nbob@example.com,10,\n"


async def invoke(settings: Settings, *args: str) -> Result:
    def run() -> Result:
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(
                import_cli, list(args), env={"DATABASE_URL": settings.DATABASE_URL}
            )
        finally:
            get_settings.cache_clear()

    return await asyncio.to_thread(run)


@pytest.fixture
async def shop(session: AsyncSession, settings: Settings) -> None:
    await create_shop(session, settings)


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "balances.csv"
    path.write_text(GOOD, encoding="utf-8")
    return path


async def test_dry_run_reports_and_writes_nothing(
    session: AsyncSession, settings: Settings, shop: None, tmp_path: Path
) -> None:
    # given a file with two good rows and one bad one
    path = tmp_path / "balances.csv"
    path.write_text(GOOD + "carol@example.com,12.5,\n", encoding="utf-8")
    counts = await row_counts(session)

    # when it is checked with --dry-run
    result = await invoke(settings, "points", str(path), "--shop", DOMAIN, "--dry-run")

    # then the report says what would happen, names the bad line, and nothing is written
    assert result.exit_code == 1, result.output
    assert "Dry run: nothing was written. This is what the import would do:" in result.stdout
    assert "  would import:     2 (130 points)\n" in result.stdout
    assert "  already imported: 0\n" in result.stdout
    assert "  rejected:         1\n" in result.stdout
    assert "  new members:      2\n" in result.stdout
    assert "  line 4: points '12.5' is not a whole number\n" in result.stdout
    assert await row_counts(session) == counts


async def test_import_then_rerun(
    session: AsyncSession, settings: Settings, shop: None, csv_file: Path
) -> None:
    first = await invoke(settings, "points", str(csv_file), "--shop", DOMAIN)

    assert first.exit_code == 0, first.output
    assert "  imported:         2 (130 points)\n" in first.stdout
    assert "Rejected rows" not in first.stdout
    assert await balances(session) == {"ada@example.com": 120, "bob@example.com": 10}
    counts = await row_counts(session)

    again = await invoke(settings, "points", str(csv_file), "--shop", DOMAIN)

    assert again.exit_code == 0, again.output
    assert "  imported:         0 (0 points)\n" in again.stdout
    assert "  already imported: 2\n" in again.stdout
    assert await row_counts(session) == counts


async def test_bad_header_refuses_the_file_with_exit_code_2(
    session: AsyncSession, settings: Settings, shop: None, tmp_path: Path
) -> None:
    path = tmp_path / "balances.csv"
    path.write_text("email,points,notes\nada@example.com,1,VIP\n", encoding="utf-8")
    counts = await row_counts(session)

    result = await invoke(settings, "points", str(path), "--shop", DOMAIN)

    assert result.exit_code == 2
    assert "line 1: unknown column 'notes'" in result.stderr
    assert "The file was refused; nothing was written." in result.stderr
    assert await row_counts(session) == counts


async def test_unknown_shop_is_refused(settings: Settings, shop: None, csv_file: Path) -> None:
    result = await invoke(settings, "points", str(csv_file), "--shop", "nope.myshopify.com")

    assert result.exit_code == 2
    assert "No shop 'nope.myshopify.com' is known to Stamp." in result.stderr


async def test_help_states_the_exit_codes(settings: Settings) -> None:
    result = await invoke(settings, "points", "--help")

    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "1 when some rows were rejected (the others were imported)" in text


@pytest.fixture
def shopify() -> Iterator[FakeShopify]:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        yield FakeShopify(router)


async def test_history_prints_the_backfill_report(
    session: AsyncSession, settings: Settings, shop: None, shopify: FakeShopify
) -> None:
    result = await invoke(settings, "history", "--shop", DOMAIN, "--reward-past-orders")

    assert result.exit_code == 0, result.output
    assert "  customers read:   4 (3 new members, 0 already known)\n" in result.stdout
    assert "  orders read:      5 (5 recorded, 0 already known)\n" in result.stdout
    assert "  orders earning:   2 (126 points awarded)\n" in result.stdout
    assert "  skipped:          1\n" in result.stdout
    assert (await balances(session))["ada@example.com"] == 90
