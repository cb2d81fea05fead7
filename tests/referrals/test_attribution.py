"""Attribution, qualification, the hold window and refunds, through the real engine."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import unit_of_work
from app.ledger.periodic import release_due
from app.models import Member, Shop
from app.models.base import utcnow
from app.referrals import service
from app.referrals.repository import ReferralRepository
from app.settings import Settings
from app.state import State
from tests.builders import row_counts
from tests.referrals.conftest import (
    deliver,
    ledger_rows,
    no_drift,
    order_payload,
    referral_shop,
    referrals,
)

RITA_ORDER: dict[str, Any] = dict(
    ip="203.0.113.9", user_agent="Mozilla/5.0 (Rita)", address1="1 Oak Lane"
)


async def rita_has_ordered(state: State, shop: Shop) -> None:
    """Rita's own earlier order: her IP, browser and address become known (hashed)."""
    payload = order_payload(
        1000, 500, "rita.referrer@gmail.com", phone="+12075550100", **RITA_ORDER
    )
    assert await deliver(state, shop.id, payload) is None


async def test_landing_site_days_later_in_another_browser_pays_after_the_window(
    state: State, session: AsyncSession, settings: Settings
) -> None:
    # given Rita (code RITA2345) and a friend who clicked days ago on another device
    shop, rita = await referral_shop(session, settings)
    # when the friend orders from a new browser; only landing_site carries the code
    payload = order_payload(2001, 601, "fay@example.com", landing_site="/?ref=rita2345")
    referral = await deliver(state, shop.id, payload)
    # then the referral qualifies and Rita's 500 points are pending for 14 days
    assert referral is not None
    assert (referral.status, referral.method, referral.code, referral.risk_score) == (
        "qualified",
        "landing_site",
        "RITA2345",
        0,
    )
    fay = await session.get(Member, referral.friend_member_id)
    assert fay is not None
    assert fay.customer_id == "601"
    rows = await ledger_rows(session)
    assert (rita.id, "referral", 500, "pending", "referral:2001:referrer") in rows
    assert referral.release_at is not None
    assert referral.release_at - referral.created_at == timedelta(days=14)
    # a duplicate delivery changes nothing
    assert (await deliver(state, shop.id, payload)).id == referral.id  # type: ignore[union-attr]
    assert await ledger_rows(session) == rows
    # when the window passes, the release job makes the points spendable
    later = utcnow() + timedelta(days=15)
    async with unit_of_work(state.sessionmaker) as work:
        stored = await work.get(Shop, shop.id)
        assert stored is not None
        assert await release_due(work, stored, later) >= 1  # also completes the referral
        assert await service.complete_released(work, stored, later) == 0
    session.expunge_all()
    await session.rollback()
    rita_now = await session.get(Member, rita.id, populate_existing=True)
    assert rita_now is not None
    assert (rita_now.points_balance, rita_now.pending_points) == (500, 0)
    assert [r.status for r in await referrals(session)] == ["completed"]
    await no_drift(session)


async def test_cart_attribute_and_referring_site_attribute(
    state: State, session: AsyncSession, settings: Settings
) -> None:
    shop, _ = await referral_shop(session, settings)
    by_attribute = await deliver(
        state,
        shop.id,
        order_payload(2002, 602, "a@example.com", attributes={"stamp_ref": "RITA2345"}),
    )
    by_referrer = await deliver(
        state,
        shop.id,
        order_payload(
            2003,
            603,
            "b@example.com",
            ip="198.51.100.8",
            referring_site="https://some-shop.com/apps/stamp/r/RITA2345",
        ),
    )
    assert by_attribute is not None
    assert by_referrer is not None
    assert (by_attribute.method, by_referrer.method) == ("cart_attribute", "referring_site")
    await no_drift(session)


async def test_the_friends_welcome_code_attributes_the_order(
    state: State, session: AsyncSession, settings: Settings
) -> None:
    shop, rita = await referral_shop(session, settings)
    async with unit_of_work(state.sessionmaker) as work:
        await ReferralRepository(work).insert_offer(
            shop_id=shop.id,
            referrer_member_id=rita.id,
            visitor_hash="v1",
            device_hash=None,
            ip_hash=None,
            code="FRIEND-ABCDEFGH23",
            status="issued",
        )
    referral = await deliver(
        state, shop.id, order_payload(2004, 604, "c@example.com", codes=("friend-abcdefgh23",))
    )
    assert referral is not None
    assert (referral.method, referral.code, referral.status) == (
        "discount_code",
        "FRIEND-ABCDEFGH23",
        "qualified",
    )


async def test_an_existing_customer_under_an_alias_email_is_not_a_first_order(
    state: State, session: AsyncSession, settings: Settings
) -> None:
    # given Gus ordered before as gus.smith@gmail.com
    shop, _ = await referral_shop(session, settings)
    await deliver(state, shop.id, order_payload(1500, 700, "gus.smith@gmail.com"))
    # when he orders again as GusSmith+new@gmail.com (a new customer record) with Rita's link
    referral = await deliver(
        state,
        shop.id,
        order_payload(2005, 701, "GusSmith+new@gmail.com", landing_site="/r/RITA2345"),
    )
    # then the referral is rejected, with why, and Rita gets nothing
    assert referral is not None
    assert referral.status == "rejected"
    assert referral.reasons[-1] == {
        "signal": "not_first_order",
        "weight": 0,
        "reason": "The friend had ordered or signed up before",
    }
    assert not [r for r in await ledger_rows(session) if r[1] == "referral"]
    await no_drift(session)


async def test_below_the_minimum_after_discounts_is_rejected(
    state: State, session: AsyncSession, settings: Settings
) -> None:
    shop, _ = await referral_shop(session, settings, minimum_order="100")
    referral = await deliver(
        state, shop.id, order_payload(2006, 605, "d@example.com", landing_site="/?ref=RITA2345")
    )
    assert referral is not None
    assert referral.status == "rejected"
    assert referral.reasons == [
        {
            "signal": "below_minimum",
            "weight": 0,
            "reason": "The order (72.00 USD after discounts) is below the 100 USD minimum",
        }
    ]
    assert not [r for r in await ledger_rows(session) if r[1] == "referral"]


async def test_refund_inside_the_window_cancels_the_pending_reward(
    state: State, session: AsyncSession, settings: Settings
) -> None:
    shop, rita = await referral_shop(session, settings)
    await deliver(
        state, shop.id, order_payload(2007, 606, "e@example.com", landing_site="/?ref=RITA2345")
    )
    # a partial refund that leaves more than the (zero) minimum keeps the reward
    async with unit_of_work(state.sessionmaker) as work:
        stored = await work.get(Shop, shop.id)
        assert stored is not None
        kept = await service.on_order_reversed(work, stored, "2007", fully=False)
        assert kept is not None
        assert kept.status == "qualified"
        cancelled = await service.on_order_reversed(work, stored, "2007", fully=True)
        assert cancelled is not None
        assert cancelled.status == "cancelled"
    assert (rita.id, "referral", 500, "cancelled", "referral:2007:referrer") in await ledger_rows(
        session
    )
    before = await row_counts(session)
    async with unit_of_work(state.sessionmaker) as work:  # a repeat changes nothing
        stored = await work.get(Shop, shop.id)
        assert stored is not None
        await service.on_order_reversed(work, stored, "2007", fully=True)
    assert await row_counts(session) == before
    await no_drift(session)


async def test_rita_using_her_own_code_is_rejected(
    state: State, session: AsyncSession, settings: Settings
) -> None:
    shop, _ = await referral_shop(session, settings, risk_policy="allow")
    referral = await deliver(
        state,
        shop.id,
        order_payload(2008, 500, "rita.referrer@gmail.com", landing_site="/?ref=RITA2345"),
    )
    assert referral is not None
    assert (referral.status, referral.risk_score, referral.reasons[0]["signal"]) == (
        "rejected",
        100,
        "own_code",
    )
    assert not [r for r in await ledger_rows(session) if r[1] == "referral"]


async def test_self_referral_with_alias_email_and_same_phone_is_held_for_review(
    state: State, session: AsyncSession, settings: Settings
) -> None:
    shop, _ = await referral_shop(session, settings)
    await rita_has_ordered(state, shop)
    referral = await deliver(
        state,
        shop.id,
        order_payload(
            2009,
            607,
            "Rita.Referrer+2@gmail.com",
            phone="207-555-0100",
            landing_site="/?ref=RITA2345",
            **RITA_ORDER,
        ),
    )
    assert referral is not None
    assert referral.status == "held"
    assert [r["signal"] for r in referral.reasons] == [
        "same_email",
        "same_phone",
        "same_address",
        "same_ip",
        "same_ip_and_browser",
    ]
    assert referral.risk_score == 100
    assert not [r for r in await ledger_rows(session) if r[1] == "referral"]
    await no_drift(session)


async def test_household_with_shared_ip_and_address_is_paid_and_reported(
    state: State, session: AsyncSession, settings: Settings
) -> None:
    # given Rita ordered from home; her partner Sam has his own email, phone and browser
    shop, _ = await referral_shop(session, settings)
    await rita_has_ordered(state, shop)
    referral = await deliver(
        state,
        shop.id,
        order_payload(
            2010,
            608,
            "sam.partner@example.com",
            phone="+12075550199",
            ip="203.0.113.9",
            user_agent="Mozilla/5.0 (Sam)",
            address1="1 Oak Lane",
            landing_site="/?ref=RITA2345",
        ),
    )
    assert referral is not None
    assert (referral.status, referral.risk_score) == ("qualified", 50)
    assert [r["signal"] for r in referral.reasons] == ["same_address", "same_ip"]


async def test_block_policy_rejects_a_flagged_referral(
    state: State, session: AsyncSession, settings: Settings
) -> None:
    shop, _ = await referral_shop(session, settings, risk_policy="block")
    referral = await deliver(
        state,
        shop.id,
        order_payload(
            2011,
            609,
            "throwaway@mailinator.com",
            phone="+1 207 555 0100",
            landing_site="/?ref=RITA2345",
        ),
    )
    assert referral is not None
    assert (referral.status, referral.risk_score) == ("rejected", 100)
    assert [r["signal"] for r in referral.reasons] == ["same_phone", "disposable_email"]


async def test_a_second_order_by_the_friend_is_not_a_second_referral(
    state: State, session: AsyncSession, settings: Settings
) -> None:
    shop, _ = await referral_shop(session, settings)
    await deliver(
        state, shop.id, order_payload(2012, 610, "f@example.com", landing_site="/?ref=RITA2345")
    )
    again = await deliver(
        state, shop.id, order_payload(2013, 610, "f@example.com", landing_site="/?ref=RITA2345")
    )
    assert again is None
    assert [r.order_id for r in await referrals(session)] == ["2012"]
    await no_drift(session)
