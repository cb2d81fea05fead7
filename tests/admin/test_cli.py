"""`stamp admin login-link`: a short-lived signed link for the shop, opened in the admin."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from app.models import ShopStatus
from app.settings import Settings
from tests.builders import create_shop, row_counts
from tests.cli.test_commands import run, runner  # noqa: F401 - the fixture


async def test_login_link_prints_a_link_that_signs_in_to_that_shop(
    runner: CliRunner,  # noqa: F811
    session: AsyncSession,
    settings: Settings,
    client: httpx.AsyncClient,
) -> None:
    await create_shop(session, settings)

    code, output = await run(runner, "admin", "login-link", "--shop", "some-shop.myshopify.com")

    assert code == 0
    link = output.strip()
    assert link.startswith("https://stamp.test/admin/login?token=")
    opened = await client.get(link)
    assert opened.status_code == 303
    home = await client.get("/admin")
    assert "<h1>Stamp on Some Shop</h1>" in home.text


async def test_login_link_for_an_unknown_or_uninstalled_shop_fails(
    runner: CliRunner,  # noqa: F811
    session: AsyncSession,
    settings: Settings,
) -> None:
    await create_shop(session, settings, status=ShopStatus.uninstalled)
    before = await row_counts(session)
    for domain in ("some-shop.myshopify.com", "nope.myshopify.com"):
        code, output = await run(runner, "admin", "login-link", "--shop", domain)
        assert code == 2
        assert f"No installed shop {domain!r} is known to Stamp." in output
    assert await row_counts(session) == before
