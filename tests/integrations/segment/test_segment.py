"""Segment in (webhook destination → custom earning actions, idempotent on messageId)
and out (identify calls with loyalty traits, against respx)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import orjson
import pytest
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import unit_of_work
from app.errors import AppError
from app.integrations.segment import service, sync
from app.models import LedgerEntry, Member, Shop
from app.program.config import CustomActionRule
from app.program.service import current_config, ensure_default_program, save_program
from app.state import State
from tests.builders import create_member, create_shop, row_counts
from tests.integrations.klaviyo.support import FakeTime
from webhooks.segment.receiver import signature

SECRET = "segment-shared-secret-0123456789"
WRITE_KEY = "wk_0123456789abcdef"
SEGMENT = "https://api.segment.io/v1"


async def shop_with_action(session: AsyncSession, state: State) -> Shop:
    shop = await create_shop(session, state.settings)
    await ensure_default_program(session, shop)
    config = await current_config(session, shop)
    action = CustomActionRule(key="left_review", name="Left a review", points=25)
    await save_program(session, shop, config.model_copy(update={"custom_actions": (action,)}), "t")
    await session.commit()
    return shop


async def connect(
    state: State, shop: Shop, write_key: str | None = None
) -> service.SegmentConnected:
    async with unit_of_work(state.sessionmaker) as uow:
        return await service.connect(
            uow,
            state.cipher,
            state.settings,
            shop,
            {"Product Reviewed": "left_review"},
            shared_secret=SECRET,
            write_key=write_key,
        )


def track(message_id: str, user_id: str = "42", event: str = "Product Reviewed") -> bytes:
    return orjson.dumps(
        {
            "type": "track",
            "event": event,
            "userId": user_id,
            "messageId": message_id,
            "properties": {"product_id": "p1"},
            "timestamp": "2026-11-22T10:00:00.000Z",
        }
    )


async def post(
    client: httpx.AsyncClient, shop: Shop, body: bytes, secret: str = SECRET
) -> httpx.Response:
    return await client.post(
        f"/webhooks/segment/{shop.id}",
        content=body,
        headers={"Content-Type": "application/json", "X-Signature": signature(secret, body)},
    )


async def points(session: AsyncSession) -> list[tuple[int, str]]:
    await session.rollback()
    result = await session.execute(select(LedgerEntry.points, LedgerEntry.idempotency_key))
    return [(row.points, row.idempotency_key) for row in result]


async def test_a_mapped_track_event_earns_once_per_message_id(
    client: httpx.AsyncClient, session: AsyncSession, state: State
) -> None:
    # given a member, and "Product Reviewed" mapped to a 25-point custom action
    shop = await shop_with_action(session, state)
    await create_member(session, shop, customer_id="42", email="ann@example.com")
    connected = await connect(state, shop)
    assert connected.webhook_url == f"https://stamp.test/webhooks/segment/{shop.id}"

    # when Segment delivers the event, then retries the same message
    first = await post(client, shop, track("msg-1"))
    retry = await post(client, shop, track("msg-1"))

    # then the member earned once, under the message id
    assert (first.json(), retry.json()) == ({"result": "processed"}, {"result": "duplicate"})
    assert await points(session) == [(25, "custom:segment:msg-1")]


async def test_the_member_is_found_by_email_when_user_id_is_unknown(
    client: httpx.AsyncClient, session: AsyncSession, state: State
) -> None:
    shop = await shop_with_action(session, state)
    await create_member(session, shop, customer_id="42", email="ann@example.com")
    await connect(state, shop)
    body = orjson.dumps(
        {
            "type": "track",
            "event": "Product Reviewed",
            "anonymousId": "anon-1",
            "messageId": "msg-2",
            "context": {"traits": {"email": "ANN@example.com"}},
        }
    )

    response = await post(client, shop, body)

    assert response.status_code == 200
    assert await points(session) == [(25, "custom:segment:msg-2")]


async def test_unmapped_events_and_other_types_are_accepted_and_ignored(
    client: httpx.AsyncClient, session: AsyncSession, state: State
) -> None:
    shop = await shop_with_action(session, state)
    await create_member(session, shop, customer_id="42")
    await connect(state, shop)

    other = await post(client, shop, track("m-3", event="Page Scrolled"))
    identify = await post(
        client, shop, orjson.dumps({"type": "identify", "userId": "42", "messageId": "m-4"})
    )

    assert (other.status_code, identify.status_code) == (200, 200)
    assert await points(session) == []


async def test_a_bad_signature_is_refused_and_nothing_is_written(
    client: httpx.AsyncClient, session: AsyncSession, state: State
) -> None:
    shop = await shop_with_action(session, state)
    await create_member(session, shop, customer_id="42")
    await connect(state, shop)
    before = await row_counts(session)

    forged = await post(client, shop, track("m-5"), secret="not-the-shared-secret")
    unsigned = await client.post(f"/webhooks/segment/{shop.id}", content=track("m-6"))
    unknown_shop = await client.post("/webhooks/segment/999", content=track("m-7"))

    assert [r.status_code for r in (forged, unsigned, unknown_shop)] == [401, 401, 401]
    assert forged.json()["error"]["code"] == "invalid_signature"
    assert await row_counts(session) == before


async def test_an_event_for_an_unknown_customer_is_dead_lettered_for_replay(
    client: httpx.AsyncClient, session: AsyncSession, state: State
) -> None:
    shop = await shop_with_action(session, state)
    await connect(state, shop)
    before = await row_counts(session)

    response = await post(client, shop, track("m-8", user_id="nobody"))

    after = await row_counts(session)
    assert response.json() == {"result": "dead_letter"}
    assert after["dead_letters"] == before["dead_letters"] + 1
    assert after["ledger_entries"] == before["ledger_entries"]


async def test_mapping_to_an_unknown_custom_action_is_refused_and_nothing_stored(
    session: AsyncSession, state: State
) -> None:
    shop = await shop_with_action(session, state)
    before = await row_counts(session)

    with pytest.raises(AppError) as refused:
        async with unit_of_work(state.sessionmaker) as uow:
            await service.connect(
                uow, state.cipher, state.settings, shop, {"Order Completed": "nope"}
            )

    assert refused.value.code == "unknown_custom_action"
    assert await row_counts(session) == before


@pytest.fixture
def segment() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=SEGMENT, assert_all_mocked=True, assert_all_called=False) as router:
        yield router


async def test_identify_calls_carry_the_loyalty_traits_with_the_write_key(
    segment: respx.MockRouter, session: AsyncSession, state: State
) -> None:
    # given a Gold member and a guest without a customer id
    shop = await shop_with_action(session, state)
    await create_member(
        session,
        shop,
        customer_id="42",
        email="ann@example.com",
        tier_name="Gold",
        points_balance=300,
        lifetime_points=900,
        referral_code="ANN00001",
    )
    await create_member(session, shop, email="guest@example.com")
    await connect(state, shop, write_key=WRITE_KEY)
    route = segment.post("/identify").respond(200, json={"success": True})

    # when the sync runs twice
    report = await sync.sync_shop(state, shop.id)
    again = await sync.sync_shop(state, shop.id)

    # then one identify call for the known customer, authenticated by the write key
    assert (report.status, report.identified, again.identified) == ("ok", 1, 0)
    [call] = route.calls
    assert (
        call.request.headers["authorization"]
        == "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    )
    message = json.loads(call.request.content)
    assert message["type"] == "identify"
    assert message["userId"] == "42"
    assert message["messageId"].startswith("stamp-")
    assert message["traits"] == {
        "email": "ann@example.com",
        "stamp_points_balance": 300,
        "stamp_pending_points": 0,
        "stamp_lifetime_points": 900,
        "stamp_tier": "Gold",
        "stamp_referral_url": "https://some-shop.myshopify.com/apps/stamp/r/ANN00001",
        "stamp_winback_status": None,
    }


async def test_many_members_go_in_batches_and_429_waits(
    segment: respx.MockRouter, session: AsyncSession, state: State
) -> None:
    shop = await shop_with_action(session, state)
    for n in range(5):
        await create_member(session, shop, customer_id=str(n), email=f"m{n}@example.com")
    await connect(state, shop, write_key=WRITE_KEY)
    route = segment.post("/batch")
    route.side_effect = [
        httpx.Response(429, headers={"Retry-After": "3"}),
        httpx.Response(200, json={"success": True}),
    ]
    time_ = FakeTime()

    report = await sync.sync_shop(
        state, shop.id, options=sync.SegmentOptions(single_max=2), sleep=time_.sleep
    )

    assert (report.status, report.identified, report.batches) == ("ok", 5, 1)
    assert time_.sleeps == [3.0]
    batch = json.loads(route.calls[1].request.content)["batch"]
    assert [m["userId"] for m in batch] == ["0", "1", "2", "3", "4"]
    assert len({m["messageId"] for m in batch}) == 5


async def test_without_a_write_key_nothing_is_sent_out(
    segment: respx.MockRouter, session: AsyncSession, state: State
) -> None:
    shop = await shop_with_action(session, state)
    await create_member(session, shop, customer_id="42")
    await connect(state, shop)

    report = await sync.sync_shop(state, shop.id)

    assert (report.status, segment.calls.call_count) == ("not_connected", 0)
    assert await sync.shops_due(state) == []
    assert (await session.scalar(select(Member.id))) is not None


async def test_the_status_endpoint_shows_the_url_and_event_map(
    client: httpx.AsyncClient, session: AsyncSession, state: State
) -> None:
    from tests.builders import api_key_for

    shop = await shop_with_action(session, state)
    await connect(state, shop)
    headers = await api_key_for(session, shop)

    response = await client.get("/api/v1/integrations/segment/status", headers=headers)

    body = response.json()
    assert (body["status"], body["events"], body["identify"], body["backlog"]) == (
        "connected",
        {"Product Reviewed": "left_review"},
        False,
        0,
    )
    assert body["webhook_url"] == f"https://stamp.test/webhooks/segment/{shop.id}"
