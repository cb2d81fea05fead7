"""Every fraud signal, at the database level: one order that triggers it, one lookalike that
does not. Orders go through the real engine and `attribute_order` (`deliver`), so the
hashing, the remembered traits and the counting queries are what is tested.

Rita (the referrer) has ordered once from home: IP 203.0.113.9, her Mac's browser, device
`dev-rita`, 1 Oak Lane, +1 207 555 0100. The default policy holds referrals scoring 60+.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import unit_of_work
from app.models import Shop
from app.models.base import utcnow
from app.models.referral import ReferralClick
from app.referrals.repository import ReferralRepository
from app.referrals.service import fingerprint
from app.settings import Settings
from app.state import State
from tests.referrals.conftest import deliver, no_drift, order_payload, referral_shop

HOME: dict[str, Any] = dict(
    ip="203.0.113.9", user_agent="Mozilla/5.0 (Rita Mac)", address1="1 Oak Lane"
)
LINK = "/?ref=RITA2345"


async def rita_at_home(state: State, session: AsyncSession, settings: Settings) -> Shop:
    shop, _ = await referral_shop(session, settings)
    rita = order_payload(
        1000,
        500,
        "rita.referrer@gmail.com",
        phone="+12075550100",
        attributes={"stamp_device": "dev-rita"},
        **HOME,
    )
    assert await deliver(state, shop.id, rita) is None
    return shop


async def friend(
    state: State, shop: Shop, n: int, email: str, **order: Any
) -> tuple[str, list[str]]:
    """Deliver friend number `n`'s first order; (status, signals) of the referral."""
    order.setdefault("landing_site", LINK)
    order.setdefault("ip", f"192.0.2.{n % 250}")
    now = order.pop("now", None)
    referral = await deliver(state, shop.id, order_payload(5000 + n, 6000 + n, email, **order), now)
    assert referral is not None
    return referral.status, [r["signal"] for r in referral.reasons]


def _ok(result: tuple[str, list[str]], signal: str) -> None:
    assert signal not in result[1]


async def test_own_code_and_a_relative_with_her_surname(
    state: State, session: AsyncSession, settings: Settings
) -> None:
    shop = await rita_at_home(state, session, settings)
    own = await deliver(
        state,
        shop.id,
        order_payload(5001, 500, "rita.referrer@gmail.com", landing_site=LINK, **HOME),
    )
    assert own is not None
    assert (own.status, own.reasons[0]["signal"]) == ("rejected", "own_code")
    sister = await friend(state, shop, 2, "rosa.referrer@gmail.com")
    assert sister == ("qualified", [])


async def test_same_email_by_alias_and_a_different_mailbox_with_her_surname(
    state: State, session: AsyncSession, settings: Settings
) -> None:
    shop = await rita_at_home(state, session, settings)
    alias = await friend(state, shop, 1, "R.ita.Referrer+deal@googlemail.com")
    assert alias == ("held", ["same_email"])
    brother = await friend(state, shop, 2, "tom.referrer@gmail.com")
    assert brother == ("qualified", [])


async def test_similar_email_is_reported_and_different_people_are_not(
    state: State, session: AsyncSession, settings: Settings
) -> None:
    shop = await rita_at_home(state, session, settings)
    assert await friend(state, shop, 1, "rita.referer@gmail.com") == (
        "qualified",
        ["similar_email"],
    )
    assert await friend(state, shop, 2, "rina.ferrer@gmail.com") == ("qualified", [])


async def test_same_phone_and_the_next_number_on_the_street(
    state: State, session: AsyncSession, settings: Settings
) -> None:
    shop = await rita_at_home(state, session, settings)
    assert await friend(state, shop, 1, "r.oakley@outlook.com", phone="207-555-0100") == (
        "held",
        ["same_phone"],
    )
    _ok(await friend(state, shop, 2, "neighbour@outlook.com", phone="207-555-0101"), "same_phone")


async def test_same_device_and_a_friend_on_her_wifi_with_her_own_phone(
    state: State, session: AsyncSession, settings: Settings
) -> None:
    shop = await rita_at_home(state, session, settings)
    # Rita's own device, behind a VPN
    assert await friend(
        state, shop, 1, "new.q@proton.me", attributes={"stamp_device": "dev-rita"}
    ) == ("held", ["same_device"])
    # a friend at Rita's, same wifi and even the same browser build, on her own device
    guest = await friend(
        state,
        shop,
        2,
        "claire@icloud.com",
        ip=HOME["ip"],
        user_agent=HOME["user_agent"],
        attributes={"stamp_device": "dev-claire"},
    )
    assert guest == ("qualified", ["same_ip"])


async def test_same_address_written_differently_and_the_house_next_door(
    state: State, session: AsyncSession, settings: Settings
) -> None:
    shop = await rita_at_home(state, session, settings)
    assert await friend(state, shop, 1, "a@example.com", address1="1 oak ln.") == (
        "qualified",
        ["same_address"],
    )
    assert await friend(state, shop, 2, "b@example.com", address1="3 Oak Lane") == (
        "qualified",
        [],
    )


async def test_same_ip_and_browser_and_the_neighbours_on_the_same_isp_block(
    state: State, session: AsyncSession, settings: Settings
) -> None:
    shop = await rita_at_home(state, session, settings)
    second_account = await friend(
        state, shop, 1, "oak.shopper@yahoo.com", ip=HOME["ip"], user_agent=HOME["user_agent"]
    )
    assert second_account == ("qualified", ["same_ip", "same_ip_and_browser"])
    partner = await friend(state, shop, 2, "sam@example.com", ip=HOME["ip"])
    assert partner == ("qualified", ["same_ip"])
    neighbour = await friend(state, shop, 3, "gwen@example.com", ip="203.0.113.10")
    assert neighbour == ("qualified", [])


async def test_ip_velocity_flags_the_sixth_order_from_one_ip_but_an_office_is_paid(
    state: State, session: AsyncSession, settings: Settings
) -> None:
    shop = await rita_at_home(state, session, settings)
    later = utcnow() + timedelta(days=2)  # outside the burst window, inside the IP week
    office = "198.51.100.50"
    for n in range(1, 6):
        result = await friend(state, shop, n, f"colleague{n}@acme.com", ip=office, now=later)
        assert result == ("qualified", [])  # up to the limit: nothing to report
    sixth = await friend(state, shop, 6, "colleague6@acme.com", ip=office, now=later)
    # reported, and paid: many orders from one office IP is IP evidence alone
    assert sixth == ("qualified", ["ip_velocity"])


async def test_burst_in_a_day_is_reported_and_the_same_count_over_days_is_not(
    state: State, session: AsyncSession, settings: Settings
) -> None:
    shop = await rita_at_home(state, session, settings)
    for n in range(1, 6):
        assert (await friend(state, shop, n, f"f{n}@example.com"))[1] == []
    spread = await friend(state, shop, 6, "f6@example.com", now=utcnow() + timedelta(days=2))
    assert spread == ("qualified", [])
    assert await friend(state, shop, 7, "f7@example.com") == ("qualified", ["burst"])
    await no_drift(session)


async def test_coupon_site_referrer_and_a_friend_from_instagram(
    state: State, session: AsyncSession, settings: Settings
) -> None:
    shop = await rita_at_home(state, session, settings)
    leaked = await friend(
        state, shop, 1, "deal@example.com", referring_site="https://www.retailmenot.com/view/x"
    )
    assert leaked == ("held", ["coupon_site"])
    social = await friend(
        state, shop, 2, "lena@example.com", referring_site="https://l.instagram.com/"
    )
    assert social == ("qualified", [])


async def test_code_spread_over_many_networks_and_many_clicks_from_a_few(
    state: State, session: AsyncSession, settings: Settings
) -> None:
    shop = await rita_at_home(state, session, settings)
    async with unit_of_work(state.sessionmaker) as work:
        repo = ReferralRepository(work)
        rita = await repo.member_by_code(shop.id, "RITA2345")
        assert rita is not None
        rita_id = rita.id
        for n in range(60):  # one family's three networks, clicking all week
            await repo.add_click(_click(shop.id, rita_id, f"10.0.{n % 3}.0/24"))
    assert await friend(state, shop, 1, "a@example.com") == ("qualified", [])
    async with unit_of_work(state.sessionmaker) as work:
        repo = ReferralRepository(work)
        for n in range(50):  # fifty unrelated networks
            await repo.add_click(_click(shop.id, rita_id, f"100.{n}.0.0/24"))
    assert await friend(state, shop, 2, "b@example.com") == ("qualified", ["code_spread"])


def _click(shop_id: int, referrer_id: int, network: str) -> ReferralClick:
    now = utcnow()
    return ReferralClick(
        shop_id=shop_id,
        referrer_member_id=referrer_id,
        code="RITA2345",
        clicked_at=now,
        network_hash=fingerprint("network", network),
        by_referrer=False,
        created_at=now,
    )


async def test_disposable_inbox_and_a_privacy_relay(
    state: State, session: AsyncSession, settings: Settings
) -> None:
    shop = await rita_at_home(state, session, settings)
    assert await friend(state, shop, 1, "xk29@mailinator.com") == ("held", ["disposable_email"])
    relay = await friend(state, shop, 2, "x7fq2k9d@privaterelay.appleid.com")
    assert relay == ("qualified", [])
