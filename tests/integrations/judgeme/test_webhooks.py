"""Judge.me webhooks end to end: signature, earn once, media bonus, reversal, no drift."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.ledger.engine import verify
from app.models import DeadLetter, Member
from app.models.integration import ReviewReward
from app.settings import Settings
from app.state import State
from tests.builders import create_member, create_shop, row_counts
from tests.integrations.judgeme.support import (
    URL,
    balance,
    connected_shop,
    delivery,
    entries,
    receiver_client,
    review,
)


@pytest.fixture
async def client(state: State) -> AsyncIterator[httpx.AsyncClient]:
    async for http in receiver_client(state):
        yield http


async def post(client: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await client.post(URL, content=body, headers=headers)


async def test_a_forged_signature_gets_401_and_writes_nothing(
    client: httpx.AsyncClient, state: State, session: AsyncSession, settings: Settings
) -> None:
    # given a connected shop and a review signed with some other secret
    await connected_shop(session, settings, state)
    body, headers = delivery(review(), secret="not-the-shop-token")
    before = await row_counts(session)

    # when it is posted
    response = await post(client, body, headers)

    # then it is refused and nothing is written
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    assert await row_counts(session) == before


async def test_unsigned_unknown_shop_and_unconnected_shop_get_401(
    client: httpx.AsyncClient, state: State, session: AsyncSession, settings: Settings
) -> None:
    await connected_shop(session, settings, state)
    await create_shop(session, settings, domain="no-judgeme.myshopify.com")
    before = await row_counts(session)
    body, headers = delivery(review())
    unknown = delivery(review(), shop="nobody.myshopify.com")
    unconnected = delivery(review(), shop="no-judgeme.myshopify.com")

    statuses = [
        (await client.post(URL, content=body)).status_code,
        (await post(client, *unknown)).status_code,
        (await post(client, *unconnected)).status_code,
    ]

    assert statuses == [401, 401, 401]
    assert await row_counts(session) == before


async def test_the_same_review_delivered_twice_earns_once(
    client: httpx.AsyncClient, state: State, session: AsyncSession, settings: Settings
) -> None:
    # given a connected shop whose program gives 50 points for a review
    await connected_shop(session, settings, state)
    body, headers = delivery(review())

    # when the review arrives twice, then once more as an update with a new timestamp
    first = await post(client, body, headers)
    second = await post(client, body, headers)
    again = await post(
        client, *delivery(review(updated_at="2026-05-02T08:00:00Z"), "review/updated")
    )

    # then it earned 50 points once, and the ledger has no drift
    assert [r.json()["result"] for r in (first, second, again)] == [
        "processed",
        "duplicate",
        "processed",
    ]
    assert await entries(session) == [("review", 50, "review:1001:earn")]
    assert await balance(session) == 50
    assert await verify(session) == []


async def test_a_photo_review_earns_the_bonus(
    client: httpx.AsyncClient, state: State, session: AsyncSession, settings: Settings
) -> None:
    await connected_shop(session, settings, state)

    response = await post(client, *delivery(review(pictures=True)))

    assert response.json()["result"] == "processed"
    assert await entries(session) == [
        ("review", 50, "review:1001:earn"),
        ("review", 25, "review:1001:media"),
    ]
    assert await balance(session) == 75
    assert await verify(session) == []


async def test_a_photo_added_later_earns_the_bonus_once(
    client: httpx.AsyncClient, state: State, session: AsyncSession, settings: Settings
) -> None:
    await connected_shop(session, settings, state)
    await post(client, *delivery(review()))

    for stamp in ("2026-05-02T08:00:00Z", "2026-05-03T08:00:00Z"):
        await post(client, *delivery(review(pictures=True, updated_at=stamp), "review/updated"))

    assert await entries(session) == [
        ("review", 50, "review:1001:earn"),
        ("review", 25, "review:1001:media"),
    ]
    assert await verify(session) == []


async def test_an_unpublished_review_reverses_everything_it_earned_once(
    client: httpx.AsyncClient, state: State, session: AsyncSession, settings: Settings
) -> None:
    # given a photo review that earned 75 points
    await connected_shop(session, settings, state)
    await post(client, *delivery(review(pictures=True)))

    # when the merchant unpublishes it (twice), then publishes it again
    for stamp in ("2026-05-02T08:00:00Z", "2026-05-02T09:00:00Z"):
        await post(client, *delivery(review(published=False, updated_at=stamp), "review/updated"))
    await post(client, *delivery(review(updated_at="2026-05-03T08:00:00Z"), "review/updated"))

    # then the 75 points were taken back once, and republishing earned nothing more
    assert await entries(session) == [
        ("review", 50, "review:1001:earn"),
        ("review", 25, "review:1001:media"),
        ("reverse", -75, "review:1001:reverse"),
    ]
    assert await balance(session) == 0
    await session.rollback()
    reward = (await session.execute(select(ReviewReward))).scalar_one()
    assert (reward.status, reward.points, reward.media_points) == ("reversed", 50, 25)
    assert reward.reversed_at is not None
    assert await verify(session) == []


async def test_a_hidden_review_reverses_too(
    client: httpx.AsyncClient, state: State, session: AsyncSession, settings: Settings
) -> None:
    await connected_shop(session, settings, state)
    await post(client, *delivery(review()))

    await post(client, *delivery(review(hidden=True, updated_at="2026-05-02T08:00:00Z")))

    assert await balance(session) == 0
    assert await verify(session) == []


async def test_a_review_earns_only_once_it_is_published(
    client: httpx.AsyncClient, state: State, session: AsyncSession, settings: Settings
) -> None:
    await connected_shop(session, settings, state)

    await post(client, *delivery(review(published=False)))
    waiting = await entries(session)
    await post(client, *delivery(review(updated_at="2026-05-02T08:00:00Z"), "review/updated"))

    assert waiting == []
    assert await entries(session) == [("review", 50, "review:1001:earn")]


async def test_one_award_per_product_per_reviewer(
    client: httpx.AsyncClient, state: State, session: AsyncSession, settings: Settings
) -> None:
    await connected_shop(session, settings, state)

    await post(client, *delivery(review(1001, product="7001")))
    await post(client, *delivery(review(1002, product="7001", email="ADA@example.com")))
    await post(client, *delivery(review(1003, product="7002")))

    assert await entries(session) == [
        ("review", 50, "review:1001:earn"),
        ("review", 50, "review:1003:earn"),
    ]
    assert await verify(session) == []


async def test_the_reviewer_is_matched_to_the_member_by_normalised_email(
    client: httpx.AsyncClient, state: State, session: AsyncSession, settings: Settings
) -> None:
    shop = await connected_shop(session, settings, state)
    ada = await create_member(
        session, shop, customer_id="5550001", email="ada@example.com", is_account=True
    )

    await post(client, *delivery(review(email="  ADA@Example.COM")))

    await session.rollback()
    fresh = select(Member).execution_options(populate_existing=True)
    found = (await session.execute(fresh)).scalars().all()
    assert [(m.id, m.points_balance) for m in found] == [(ada.id, 50)]


async def test_reviews_earn_nothing_when_the_program_does_not_reward_them(
    client: httpx.AsyncClient, state: State, session: AsyncSession, settings: Settings
) -> None:
    await connected_shop(session, settings, state, enabled=False)

    response = await post(client, *delivery(review(pictures=True)))

    assert response.json()["result"] == "processed"
    assert await entries(session) == []


async def test_a_payload_without_a_review_id_is_kept_as_a_dead_letter(
    client: httpx.AsyncClient, state: State, session: AsyncSession, settings: Settings
) -> None:
    await connected_shop(session, settings, state)
    broken = review()
    del broken["id"]

    response = await post(client, *delivery(broken))

    assert response.status_code == 200
    assert response.json()["result"] == "dead_letter"
    await session.rollback()
    letter = (await session.execute(select(DeadLetter))).scalar_one()
    assert (letter.source, letter.topic, letter.error) == (
        "judgeme",
        "review/created",
        "ValueError: the review has no id",
    )
