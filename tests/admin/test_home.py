"""Home: the figures over a date range, SVG charts, CSV exports, and the onboarding list."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin import service
from app.admin.charts import nice_ceiling
from app.errors import ValidationFailed
from app.ledger import service as ledger
from app.models import Order, Referral
from app.program.service import ensure_default_program
from app.settings import Settings
from tests.admin.support import bearer
from tests.builders import create_member, create_shop

DAY = datetime(2026, 3, 2, 12, tzinfo=UTC)
RANGE = {"from": "2026-03-01", "to": "2026-03-03"}


async def busy_shop(session: AsyncSession, settings: Settings):  # type: ignore[no-untyped-def]
    shop = await create_shop(session, settings)
    await ensure_default_program(session, shop)
    ada = await create_member(session, shop, email="ada@example.com", is_account=True)
    bob = await create_member(session, shop, email="bob@example.com", is_account=False)
    for key, points, kind in (("e1", 300, "earn"), ("e2", 200, "earn")):
        await ledger.post(
            session, shop.id, ledger.Posting(ada.id, points, kind, key, created_at=DAY)
        )
    await ledger.spend(
        session, shop.id, ledger.Posting(ada.id, -100, "redeem", "r1", created_at=DAY)
    )
    for number, (member, total) in enumerate(((ada, "50"), (ada, "30"), (bob, "20")), 1):
        session.add(
            Order(
                shop_id=shop.id,
                member_id=member.id,
                order_id=str(number),
                currency="USD",
                merchandise_amount=Decimal(total),
                total_amount=Decimal(total),
                placed_at=DAY,
            )
        )
    session.add(
        Referral(
            shop_id=shop.id,
            referrer_member_id=ada.id,
            friend_member_id=bob.id,
            order_id="3",
            code="X",
            method="link",
            status="qualified",
            order_amount=Decimal("20"),
            currency="USD",
            created_at=DAY,
        )
    )
    await session.commit()
    return shop


async def test_the_home_page_shows_the_figures_of_the_range(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await busy_shop(session, settings)
    response = await client.get("/admin", params=RANGE, headers=bearer(settings, shop))

    assert response.status_code == 200
    text = response.text
    assert "<dt>Members</dt><dd>2</dd>" in text
    assert "<dt>Points issued</dt><dd>500</dd>" in text
    assert "<dt>Points redeemed</dt><dd>100</dd>" in text
    assert "<dt>Redemption rate</dt><dd>20.0%</dd>" in text
    # 400 points outstanding at the default reward's 5 USD per 500 points
    assert "≈ 4.00 USD" in text
    assert "<td>Members</td><td>1</td><td>2</td><td>100.0%</td><td>80.00</td><td>80.00</td>" in text
    assert (
        "<td>Non-members</td><td>1</td><td>1</td><td>0.0%</td><td>20.00</td><td>20.00</td>" in text
    )
    assert text.count('<svg class="chart"') == 3
    assert (
        "<td>2026-03-02</td><td>500</td><td>100</td><td>0</td><td>80.00</td><td>20.00</td>" in text
    )


async def test_every_table_exports_as_csv_for_the_range(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await busy_shop(session, settings)
    headers = bearer(settings, shop)
    summary = await client.get("/admin/export/summary.csv", params=RANGE, headers=headers)
    daily = await client.get("/admin/export/daily.csv", params=RANGE, headers=headers)
    unknown = await client.get("/admin/export/nope.csv", params=RANGE, headers=headers)

    assert summary.headers["content-type"] == "text/csv; charset=utf-8"
    assert summary.headers["content-disposition"] == (
        'attachment; filename="stamp-summary-2026-03-01-2026-03-03.csv"'
    )
    assert summary.text.splitlines()[:4] == [
        "Figure,Value",
        "Members,2",
        "Points issued,500",
        "Points redeemed,100",
    ]
    assert "Referral revenue (USD),20.00" in summary.text
    assert daily.text.splitlines() == [
        "Day,Points issued,Points redeemed,New members,Member revenue (USD),Other revenue (USD)",
        "2026-03-01,0,0,0,0.00,0.00",
        "2026-03-02,500,100,0,80.00,20.00",
        "2026-03-03,0,0,0,0.00,0.00",
    ]
    assert unknown.status_code == 404
    for name in ("customers", "winback"):
        assert (await client.get(f"/admin/export/{name}.csv", headers=headers)).status_code == 200


async def test_a_bad_range_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    response = await client.get(
        "/admin", params={"from": "2026-03-05", "to": "2026-03-01"}, headers=bearer(settings, shop)
    )
    assert response.status_code == 400 or response.status_code == 422
    assert "The range starts after it ends" in response.text


async def test_the_checklist_deep_links_to_the_app_embed(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    response = await client.get("/admin", headers=bearer(settings, shop))
    assert (
        "https://some-shop.myshopify.com/admin/themes/current/editor?context=apps"
        "&amp;activateAppId=test-api-key/app-embed"
    ) in response.text
    assert "Review the default program and save it" in response.text
    assert "Connect Klaviyo" in response.text


def test_date_range_defaults_and_limits() -> None:
    today = date(2026, 3, 31)
    assert service.date_range(None, None, today) == service.DateRange(date(2026, 3, 2), today)
    for raw in (("2026-01-01", "2027-06-01"), ("nope", None)):
        try:
            service.date_range(raw[0], raw[1], today)
        except ValidationFailed:
            continue
        raise AssertionError(raw)


def test_csv_cells_that_spreadsheets_would_run_are_quoted() -> None:
    table = service.Table("t", "T", ("a",), [("=HYPERLINK(1)",), ("ok",)])
    assert service.csv_text(table).splitlines() == ["a", "'=HYPERLINK(1)", "ok"]


def test_axis_ceilings_are_round() -> None:
    assert [nice_ceiling(v) for v in (0, 0.4, 7, 13, 240, 999, 1001)] == [
        1.0,
        1.0,
        10.0,
        20.0,
        250.0,
        1000.0,
        2000.0,
    ]
