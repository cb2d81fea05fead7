"""The review queue API and the app-proxy referral link, mounted as the lead will mount them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from app.errors import AppError
from app.models import Member
from app.models.referral import ReferralClick, ReferralOffer
from app.referrals import routes as referral_routes
from app.settings import Settings
from app.state import State
from tests.builders import api_key_for, row_counts
from tests.conftest import _with_state
from tests.proxy.test_routes import signed
from tests.referrals.conftest import deliver, ledger_rows, no_drift, order_payload, referral_shop
from tests.rewards.test_redemptions import CREATED, GRAPHQL


@pytest.fixture
async def api(state: State) -> AsyncIterator[httpx.AsyncClient]:
    from app.main import _app_error

    application = Starlette(
        routes=[*referral_routes.routes, *referral_routes.proxy_routes],
        exception_handlers={AppError: _app_error},
    )
    transport = httpx.ASGITransport(app=_with_state(application, state))
    async with httpx.AsyncClient(transport=transport, base_url="https://stamp.test") as http:
        yield http


async def held_referral(
    state: State, session: AsyncSession, settings: Settings
) -> tuple[int, dict[str, str]]:
    shop, _ = await referral_shop(session, settings)
    referral = await deliver(
        state,
        shop.id,
        order_payload(3001, 801, "rita.referrer+x@gmail.com", landing_site="/?ref=RITA2345"),
    )
    assert referral is not None
    assert referral.status == "held"
    return referral.id, await api_key_for(session, shop)


async def test_review_queue_lists_held_and_approve_pays_pending(
    api: httpx.AsyncClient, state: State, session: AsyncSession, settings: Settings
) -> None:
    referral_id, headers = await held_referral(state, session, settings)
    queue = await api.get("/api/v1/referrals?status=held&limit=1", headers=headers)
    assert queue.status_code == 200
    body = queue.json()
    assert [(r["id"], r["risk_score"], r["reasons"][0]["signal"]) for r in body["data"]] == [
        (referral_id, 100, "same_email")
    ]
    assert body["next_cursor"] is None
    approved = await api.post(
        f"/api/v1/referrals/{referral_id}/approve",
        json={"reason": "Checked: her sister"},
        headers=headers,
    )
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["decision_reason"]) == (
        "qualified",
        "Checked: her sister",
    )
    assert [r[1:4] for r in await ledger_rows(session) if r[1] == "referral"] == [
        ("referral", 500, "pending")
    ]
    await no_drift(session)


async def test_refusals_change_nothing(
    api: httpx.AsyncClient, state: State, session: AsyncSession, settings: Settings
) -> None:
    referral_id, headers = await held_referral(state, session, settings)
    before = await row_counts(session)
    cases = [
        ("/api/v1/referrals/999999/approve", {"reason": "x"}, 404, "referral_not_found"),
        ("/api/v1/referrals/abc/reject", {"reason": "x"}, 404, "referral_not_found"),
        (f"/api/v1/referrals/{referral_id}/approve", {}, 422, "validation_failed"),
        (f"/api/v1/referrals/{referral_id}/reject", {"reason": ""}, 422, "validation_failed"),
    ]
    for path, body, status, code in cases:
        response = await api.post(path, json=body, headers=headers)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), path
    assert (
        await api.post(f"/api/v1/referrals/{referral_id}/approve", json={"reason": "x"})
    ).status_code == 401
    assert await row_counts(session) == before
    # rejecting, then approving the rejected referral: 409 and nothing changes
    rejected = await api.post(
        f"/api/v1/referrals/{referral_id}/reject", json={"reason": "Same person"}, headers=headers
    )
    assert rejected.json()["status"] == "rejected"
    after_reject = await row_counts(session)
    again = await api.post(
        f"/api/v1/referrals/{referral_id}/approve", json={"reason": "oops"}, headers=headers
    )
    assert (again.status_code, again.json()["error"]["code"]) == (409, "referral_not_held")
    assert await row_counts(session) == after_reject
    assert not [r for r in await ledger_rows(session) if r[1] == "referral"]
    await no_drift(session)


@respx.mock
async def test_referral_link_records_the_click_and_redirects_with_one_welcome_code(
    api: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop, rita = await referral_shop(session, settings)
    shopify = respx.post(GRAPHQL).mock(return_value=httpx.Response(200, json=CREATED))
    url = signed(settings, "r/rita2345", customer_id="", extra={"device": "dev-friend-1"})
    first = await api.get(url, headers={"X-Forwarded-For": "198.51.100.7"})
    second = await api.get(url, headers={"X-Forwarded-For": "198.51.100.7"})
    assert first.status_code == second.status_code == 302
    session.expunge_all()
    await session.rollback()
    offer = (await session.execute(select(ReferralOffer))).scalar_one()
    assert offer.status == "issued"
    assert offer.code.startswith("FRIEND-")
    location = f"/discount/{offer.code}?redirect=%2F%3Fref%3DRITA2345"
    assert first.headers["location"] == second.headers["location"] == location
    assert shopify.call_count == 1
    clicks = (await session.execute(select(ReferralClick))).scalars().all()
    assert [(c.code, c.by_referrer) for c in clicks] == [("RITA2345", False)] * 2
    assert all(c.ip_hash and "198.51" not in c.ip_hash for c in clicks)


async def test_the_referrer_clicking_their_own_link_gets_no_code(
    api: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await referral_shop(session, settings)
    response = await api.get(signed(settings, "r/RITA2345", customer_id="500"))
    assert (response.status_code, response.headers["location"]) == (302, "/")
    session.expunge_all()
    await session.rollback()
    assert (await session.execute(select(ReferralOffer))).first() is None
    click = (await session.execute(select(ReferralClick))).scalar_one()
    assert click.by_referrer is True
    assert (await session.execute(select(Member.id))).first() is not None
