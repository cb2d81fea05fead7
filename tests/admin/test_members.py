"""Members: search, a member's page, and manual adjustments (with every refusal)."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.ledger import service as ledger
from app.models import LedgerEntry, Member, Shop
from app.settings import Settings
from tests.admin.support import bearer, field_error, sign_in
from tests.builders import create_member, create_shop, row_counts


async def with_ada(session: AsyncSession, settings: Settings) -> tuple[Shop, Member]:
    shop = await create_shop(session, settings)
    ada = await create_member(
        session,
        shop,
        customer_id="7001",
        email="ada@example.com",
        first_name="Ada",
        last_name="Lovelace",
        is_account=True,
    )
    await create_member(
        session,
        shop,
        customer_id="7002",
        email="grace@example.com",
        first_name="Grace",
        last_name="Hopper",
    )
    await ledger.post(session, shop.id, ledger.Posting(ada.id, 120, "earn", "order:1:earn"))
    await session.commit()
    return shop, ada


async def balance(session: AsyncSession, member_id: int) -> int | None:
    await session.rollback()
    return await session.scalar(select(Member.points_balance).where(Member.id == member_id))


async def test_search_by_email_or_name(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop, _ = await with_ada(session, settings)
    headers = bearer(settings, shop)

    by_email = await client.get("/admin/members", params={"q": "ADA@ex"}, headers=headers)
    by_name = await client.get("/admin/members", params={"q": "grace hop"}, headers=headers)
    nobody = await client.get("/admin/members", params={"q": "%"}, headers=headers)

    assert "ada@example.com" in by_email.text
    assert "grace@example.com" not in by_email.text
    assert "grace@example.com" in by_name.text
    assert "ada@example.com" not in by_name.text
    assert "No members match" in nobody.text


async def test_the_member_page_shows_balance_tier_and_ledger(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop, ada = await with_ada(session, settings)
    response = await client.get(f"/admin/members/{ada.id}", headers=bearer(settings, shop))
    assert response.status_code == 200
    assert '<dd id="balance">120</dd>' in response.text
    assert "order:1:earn" not in response.text  # keys are internal
    assert '<td>earn</td><td class="num">120</td>' in response.text
    assert "not scanned yet" in response.text


async def test_an_adjustment_with_a_reason_moves_the_balance_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop, ada = await with_ada(session, settings)
    ada_id = ada.id
    csrf = await sign_in(client, settings, shop)
    form = {
        "points": "-20",
        "reason": "Damaged parcel goodwill reversed",
        "key": "k1",
        "csrf_token": csrf,
    }

    first = await client.post(f"/admin/members/{ada.id}/adjust", data=form)
    again = await client.post(f"/admin/members/{ada.id}/adjust", data=form)  # double submit

    assert first.status_code == 303
    assert first.headers["location"] == f"/admin/members/{ada.id}?adjusted=1"
    assert again.status_code == 303
    await session.rollback()
    entries = list(await session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "adjust")))
    assert [(e.points, e.reason, e.actor) for e in entries] == [
        (-20, "Damaged parcel goodwill reversed", "admin:login-link")
    ]
    assert await balance(session, ada_id) == 100


async def test_bad_adjustments_are_refused_next_to_the_field_and_change_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop, ada = await with_ada(session, settings)
    ada_id = ada.id
    headers = bearer(settings, shop)
    before = await row_counts(session)
    cases = [
        (
            {"points": "-121", "reason": "too much"},
            "points",
            "The balance is 120; it cannot go below 0",
        ),
        ({"points": "0", "reason": "nothing"}, "points", "An adjustment must add or remove points"),
        (
            {"points": "1.5", "reason": "half"},
            "points",
            "Enter a whole number of points, e.g. 50 or -50",
        ),
        (
            {"points": "10", "reason": "  "},
            "reason",
            "Say why, so the member&#39;s history explains the change",
        ),
    ]
    for form, field, message in cases:
        response = await client.post(f"/admin/members/{ada.id}/adjust", data=form, headers=headers)
        assert response.status_code == 422, form
        assert field_error(response.text, field) == message
        assert "Nothing changed." in response.text
    assert await row_counts(session) == before
    assert await balance(session, ada_id) == 120


async def test_an_unknown_member_is_404(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop, _ = await with_ada(session, settings)
    for path in ("/admin/members/999999", "/admin/members/abc"):
        response = await client.get(path, headers=bearer(settings, shop))
        assert response.status_code == 404


async def test_text_with_a_nul_character_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # Given a signed-in merchant (PostgreSQL cannot store NUL in text)
    shop, ada = await with_ada(session, settings)
    ada_id = ada.id
    token = await sign_in(client, settings, shop)
    before = await row_counts(session)

    # When a search or a form carries one
    search = await client.get("/admin/members", params={"q": "ada\x00"})
    adjust = await client.post(
        f"/admin/members/{ada_id}/adjust",
        data={"csrf_token": token, "points": "5", "reason": "bonus\x00", "key": "nul-1"},
    )

    # Then both are refused with a clear message, and nothing was written
    assert (search.status_code, adjust.status_code) == (400, 400)
    assert "NUL character" in search.text
    assert "NUL character" in adjust.text
    assert await row_counts(session) == before
