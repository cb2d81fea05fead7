"""Import: the CLI's dry-run report in the browser; broken files import nothing."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import LedgerEntry, Member
from app.settings import Settings
from tests.admin.support import bearer, field_error
from tests.builders import create_shop, row_counts

GOOD = "email,points,tier\nada@example.com,250,\ngrace@example.com,40,\n"
BROKEN = "email,points\nada@example.com,250\nnot-an-email,10\ngrace@example.com,-5\n"


def upload(text: str, mode: str) -> dict[str, object]:
    return {"files": {"file": ("points.csv", text.encode(), "text/csv")}, "data": {"mode": mode}}


async def test_a_dry_run_reports_and_writes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    before = await row_counts(session)
    response = await client.post(
        "/admin/import",
        headers=bearer(settings, shop),
        **upload(BROKEN, "dry_run"),  # type: ignore[arg-type]
    )
    assert response.status_code == 200
    assert "Dry run: nothing was written" in response.text
    assert "<li>line 3: " in response.text
    assert "<li>line 4: " in response.text
    assert '<td class="num">1 (250 points)</td>' in response.text
    assert await row_counts(session) == before


async def test_a_file_with_broken_rows_imports_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    before = await row_counts(session)
    response = await client.post(
        "/admin/import",
        headers=bearer(settings, shop),
        **upload(BROKEN, "import"),  # type: ignore[arg-type]
    )
    assert response.status_code == 422
    assert field_error(response.text, "file") == (
        "Nothing was imported: 2 row(s) are broken. "
        "Fix them (see the lines below) and upload the file again."
    )
    assert "<li>line 3: " in response.text
    assert await row_counts(session) == before


async def test_a_bad_header_or_no_file_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    before = await row_counts(session)
    headers = bearer(settings, shop)
    header = await client.post(
        "/admin/import",
        headers=headers,
        **upload("mail,points\nx@y.z,1\n", "import"),  # type: ignore[arg-type]
    )
    nothing = await client.post("/admin/import", headers=headers, data={"mode": "import"})
    assert header.status_code == 422
    assert field_error(header.text, "file") == (
        "line 1: unknown column &#39;mail&#39;; the columns are email, points and optionally "
        "tier and birthday"
    )
    assert nothing.status_code == 422
    assert field_error(nothing.text, "file") == (
        "Choose a CSV file with the columns email and points"
    )
    assert await row_counts(session) == before


async def test_a_clean_file_imports_with_progress(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    response = await client.post(
        "/admin/import",
        headers=bearer(settings, shop),
        **upload(GOOD, "import"),  # type: ignore[arg-type]
    )
    assert response.status_code == 200
    assert '<p class="progress">Imported 2 of 2 rows…</p>' in response.text
    assert "Import finished" in response.text
    assert "Done: 2 imported." in response.text
    await session.rollback()
    rows = await session.execute(select(Member.email, Member.points_balance).order_by(Member.email))
    assert list(rows) == [("ada@example.com", 250), ("grace@example.com", 40)]
    kinds = list(await session.scalars(select(LedgerEntry.kind).distinct()))
    assert kinds == ["import"]
