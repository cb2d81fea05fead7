"""Outgoing webhooks end to end: API subscription → outbox event → signed POST to a local
receiver; retries on 5xx, one id per event, disabling after a day, replay."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.integrations.outgoing import delivery
from app.ledger import service as ledger
from app.models import Member, OutgoingDelivery, Shop, WebhookSubscription
from app.models.base import utcnow
from app.settings import Settings
from app.state import State
from tests.builders import DOMAIN, api_key_for, create_member, create_shop, row_counts
from tests.conftest import make_settings
from tests.integrations.outgoing.receiver import Receiver, local_receiver

OPTIONS = delivery.DeliveryOptions(settle_seconds=0)


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Tests and dev only: lets the subscription reach the loopback receiver."""
    return make_settings(database_url, ALLOW_PRIVATE_URLS=True)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with local_receiver() as running:
        yield running


def documented_verify(secret: str, body: bytes, header: str) -> bool:
    """The recipe in docs/connectors.md, written out as a receiver would."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    timestamp = parts["t"]
    if abs(time.time() - int(timestamp)) > 300:
        return False
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


async def subscribe(
    client: httpx.AsyncClient, headers: dict[str, str], url: str, events: list[str]
) -> dict[str, object]:
    response = await client.post(
        "/api/v1/webhook-subscriptions", json={"url": url, "events": events}, headers=headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, object] = response.json()
    return created


async def shop_and_member(session: AsyncSession, settings: Settings) -> tuple[Shop, Member]:
    shop = await create_shop(session, settings)
    member = await create_member(
        session, shop, customer_id="42", email="ann@example.com", referral_code="ANN12345"
    )
    return shop, member


async def earn(session: AsyncSession, shop: Shop, member: Member, key: str, points: int) -> None:
    await ledger.post(session, shop.id, ledger.Posting(member.id, points, "custom", key))
    await session.commit()


async def test_a_subscribed_url_gets_a_signed_delivery_it_can_verify(
    client: httpx.AsyncClient, session: AsyncSession, state: State, receiver: Receiver
) -> None:
    # given a Zapier-style subscription to points.earned
    shop, member = await shop_and_member(session, state.settings)
    headers = await api_key_for(session, shop)
    created = await subscribe(client, headers, receiver.url, ["points.earned"])
    secret = str(created["secret"])
    assert secret.startswith("whsec_")

    # when the member earns points and the delivery job runs
    await earn(session, shop, member, "custom:follow", 50)
    report = await delivery.deliver_shop(state, shop.id, options=OPTIONS)

    # then the receiver got one POST it can verify with the documented recipe
    assert (report.queued, report.delivered) == (1, 1)
    [got] = receiver.received
    assert documented_verify(secret, got.body, got.headers["stamp-signature"])
    assert not documented_verify("whsec_wrong", got.body, got.headers["stamp-signature"])
    payload = orjson.loads(got.body)
    event_id = await session.scalar(select(OutgoingDelivery.member_event_id))
    assert got.headers["stamp-event-id"] == payload["id"] == f"evt_{event_id}"
    assert got.headers["stamp-event-type"] == "points.earned"
    assert payload["type"] == "points.earned"
    assert payload["shop"] == DOMAIN
    assert payload["data"] == {
        "member": {
            "customer_id": "42",
            "email": "ann@example.com",
            "points_balance": 50,
            "pending_points": 0,
            "lifetime_points": 50,
            "tier": None,
        },
        "properties": {
            "points": 50,
            "kind": "custom",
            "status": "available",
            "reason": None,
            "source_type": None,
            "source_id": None,
        },
    }


async def test_events_the_subscription_did_not_ask_for_and_history_are_not_sent(
    client: httpx.AsyncClient, session: AsyncSession, state: State, receiver: Receiver
) -> None:
    # given an event recorded before the subscription, and one of another type after it
    shop, member = await shop_and_member(session, state.settings)
    await earn(session, shop, member, "custom:before", 10)
    headers = await api_key_for(session, shop)
    await subscribe(client, headers, receiver.url, ["points.spent"])
    await earn(session, shop, member, "custom:after", 10)

    # when the job runs
    report = await delivery.deliver_shop(state, shop.id, options=OPTIONS)

    # then nothing is delivered
    assert (report.queued, receiver.received) == (0, [])


async def test_a_5xx_is_retried_with_backoff_under_the_same_event_id(
    client: httpx.AsyncClient, session: AsyncSession, state: State, receiver: Receiver
) -> None:
    # given a receiver that fails once with 503, then accepts
    shop, member = await shop_and_member(session, state.settings)
    headers = await api_key_for(session, shop)
    await subscribe(client, headers, receiver.url, ["*"])
    await earn(session, shop, member, "custom:one", 5)
    receiver.statuses = [503]
    now = utcnow()

    # when the job runs now, again before the backoff ends, and after it
    first = await delivery.deliver_shop(state, shop.id, options=OPTIONS, now=now)
    early = await delivery.deliver_shop(
        state, shop.id, options=OPTIONS, now=now + timedelta(seconds=29)
    )
    later = await delivery.deliver_shop(
        state, shop.id, options=OPTIONS, now=now + timedelta(seconds=31)
    )

    # then the second attempt waited 30 s and carried the same event id
    assert (first.failed_attempts, early.delivered, later.delivered) == (1, 0, 1)
    assert len(receiver.received) == 2
    ids = {r.headers["stamp-event-id"] for r in receiver.received}
    assert len(ids) == 1
    response = await client.get(
        f"/api/v1/webhook-subscriptions/{await _subscription_id(session)}/deliveries",
        headers=headers,
    )
    [logged] = response.json()["data"]
    assert (logged["status"], logged["attempts"], logged["response_status"]) == (
        "delivered",
        2,
        200,
    )
    assert logged["event_id"] in ids


async def test_each_event_is_delivered_once_however_often_the_job_runs(
    client: httpx.AsyncClient, session: AsyncSession, state: State, receiver: Receiver
) -> None:
    # given three events
    shop, member = await shop_and_member(session, state.settings)
    headers = await api_key_for(session, shop)
    await subscribe(client, headers, receiver.url, ["points.earned", "points.spent"])
    await earn(session, shop, member, "custom:a", 5)
    await earn(session, shop, member, "custom:b", 5)
    await ledger.adjust(
        session, shop, member, -3, reason="typo", actor="test", idempotency_key="fix-1"
    )
    await session.commit()

    # when the job runs three times
    for _ in range(3):
        await delivery.deliver_shop(state, shop.id, options=OPTIONS)

    # then each event reached the receiver exactly once, under its own id
    ids = [r.headers["stamp-event-id"] for r in receiver.received]
    assert len(ids) == 3
    assert len(set(ids)) == 3
    types = [orjson.loads(r.body)["type"] for r in receiver.received]
    assert types == ["points.earned", "points.earned", "points.spent"]
    assert orjson.loads(receiver.received[2].body)["data"]["properties"]["points"] == 3


async def test_a_day_of_failures_disables_the_subscription_with_the_reason_then_replay(
    client: httpx.AsyncClient, session: AsyncSession, state: State, receiver: Receiver
) -> None:
    # given a receiver that answers 500 for a whole day
    shop, member = await shop_and_member(session, state.settings)
    headers = await api_key_for(session, shop)
    created = await subscribe(client, headers, receiver.url, ["points.earned"])
    await earn(session, shop, member, "custom:x", 5)
    receiver.default = 500
    now = utcnow()
    shop_id = shop.id

    # when the job keeps running as retries come due
    disabled: list[int] = []
    for minute in range(0, 26 * 60, 30):
        report = await delivery.deliver_shop(
            state, shop.id, options=OPTIONS, now=now + timedelta(minutes=minute)
        )
        disabled += report.disabled

    # then it gave up after a day and the reason is visible in the API
    assert disabled == [created["id"]]
    attempts = len(receiver.received)
    assert 20 <= attempts <= 40
    listed = (await client.get("/api/v1/webhook-subscriptions", headers=headers)).json()["data"]
    assert listed[0]["status"] == "disabled"
    assert listed[0]["disabled_reason"].startswith(
        f"Deliveries to this URL failed for 24 hours ({attempts} attempts); last error: HTTP 500"
    )
    log = (
        await client.get(
            f"/api/v1/webhook-subscriptions/{created['id']}/deliveries", headers=headers
        )
    ).json()["data"]
    assert (log[0]["status"], log[0]["attempts"]) == ("failed", attempts)

    # and replaying while disabled is refused, changing nothing
    before = await row_counts(session)
    refused = await client.post(
        f"/api/v1/webhook-subscriptions/{created['id']}/deliveries/{log[0]['id']}/replay",
        headers=headers,
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "subscription_disabled"
    assert await row_counts(session) == before
    status = await session.scalar(
        select(OutgoingDelivery.status).where(OutgoingDelivery.id == log[0]["id"])
    )
    assert status == "failed"

    # when the merchant fixes the receiver, enables the subscription and replays
    receiver.default = 200
    enabled = await client.post(
        f"/api/v1/webhook-subscriptions/{created['id']}/enable", headers=headers
    )
    assert enabled.json()["status"] == "active"
    assert enabled.json()["disabled_reason"] is None
    replayed = await client.post(
        f"/api/v1/webhook-subscriptions/{created['id']}/deliveries/{log[0]['id']}/replay",
        headers=headers,
    )
    assert replayed.status_code == 202
    assert (replayed.json()["status"], replayed.json()["attempts"]) == ("pending", 0)
    report = await delivery.deliver_shop(state, shop_id, options=OPTIONS)

    # then it is delivered under the same event id as every earlier attempt
    assert report.delivered == 1
    assert len({r.headers["stamp-event-id"] for r in receiver.received}) == 1


async def test_410_gone_unsubscribes_at_once(
    client: httpx.AsyncClient, session: AsyncSession, state: State, receiver: Receiver
) -> None:
    # given a receiver whose zap was turned off
    shop, member = await shop_and_member(session, state.settings)
    headers = await api_key_for(session, shop)
    await subscribe(client, headers, receiver.url, ["points.earned"])
    await earn(session, shop, member, "custom:y", 5)
    receiver.default = 410

    # when one delivery is attempted
    await delivery.deliver_shop(state, shop.id, options=OPTIONS)

    # then the subscription is disabled with the reason, and no retry is made
    subscription = await session.scalar(select(WebhookSubscription))
    assert subscription is not None
    assert subscription.status == "disabled"
    assert subscription.disabled_reason == (
        "The receiver answered 410 Gone, which unsubscribes the URL"
    )
    await delivery.deliver_shop(state, shop.id, options=OPTIONS, now=utcnow() + timedelta(hours=2))
    assert len(receiver.received) == 1


async def test_delete_unsubscribes_and_hides_the_subscription(
    client: httpx.AsyncClient, session: AsyncSession, state: State, receiver: Receiver
) -> None:
    # given a subscription
    shop, member = await shop_and_member(session, state.settings)
    headers = await api_key_for(session, shop)
    created = await subscribe(client, headers, receiver.url, ["points.earned"])

    # when it is deleted (Zapier's unsubscribe) and an event follows
    deleted = await client.delete(f"/api/v1/webhook-subscriptions/{created['id']}", headers=headers)
    await earn(session, shop, member, "custom:z", 5)
    await delivery.deliver_shop(state, shop.id, options=OPTIONS)

    # then nothing is sent, it is no longer listed, and a second delete is a 404
    assert deleted.status_code == 204
    assert receiver.received == []
    listed = await client.get("/api/v1/webhook-subscriptions", headers=headers)
    assert listed.json() == {"data": [], "next_cursor": None}
    again = await client.delete(f"/api/v1/webhook-subscriptions/{created['id']}", headers=headers)
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "subscription_not_found"


async def _subscription_id(session: AsyncSession) -> int:
    await session.rollback()
    found = await session.scalar(select(WebhookSubscription.id))
    assert found is not None
    return found


async def test_old_delivered_rows_are_purged_and_never_sent_again(
    client: httpx.AsyncClient, session: AsyncSession, state: State, receiver: Receiver
) -> None:
    # given one delivered and one failing delivery
    shop, member = await shop_and_member(session, state.settings)
    headers = await api_key_for(session, shop)
    await subscribe(client, headers, receiver.url, ["points.earned"])
    await earn(session, shop, member, "custom:p1", 5)
    await delivery.deliver_shop(state, shop.id, options=OPTIONS)
    receiver.default = 500
    await earn(session, shop, member, "custom:p2", 5)
    await delivery.deliver_shop(state, shop.id, options=OPTIONS)

    # when the purge runs 31 days later, and then the delivery job
    purged = await delivery.purge_delivered(state, 30, now=utcnow() + timedelta(days=31))
    receiver.default = 200
    later = await delivery.deliver_shop(
        state, shop.id, options=OPTIONS, now=utcnow() + timedelta(minutes=5)
    )

    # then only the delivered row went, and the first event was not delivered again
    assert purged == 1
    statuses = (await session.execute(select(OutgoingDelivery.status))).scalars().all()
    assert statuses == ["delivered"]
    assert later.queued == 0
    assert [orjson.loads(r.body)["data"]["properties"]["points"] for r in receiver.received] == [
        5,
        5,
        5,
    ]
    assert len({r.headers["stamp-event-id"] for r in receiver.received}) == 2
