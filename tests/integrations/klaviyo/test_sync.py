"""The Klaviyo sync against respx: names on the wire, batching, failures, a revoked key."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from app.db import unit_of_work
from app.errors import AppError
from app.integrations.klaviyo import service, sync
from app.integrations.klaviyo.client import KlaviyoAuthError, KlaviyoClient
from app.integrations.klaviyo.repository import KlaviyoRepository
from app.integrations.klaviyo.routes import routes
from app.ledger import outbox
from app.ledger import service as ledger
from app.main import _app_error
from app.models import Member, MemberEvent, Shop
from app.models.base import utcnow
from app.models.integration import EventSync, IntegrationConnection
from app.settings import Settings
from app.state import State
from tests.builders import DOMAIN, api_key_for, create_member, create_shop, row_counts
from tests.integrations.klaviyo.support import FakeTime

BASE = "https://a.klaviyo.com"
KEY = "pk_sync_test_0123456789abcdef"
NEW_KEY = "pk_sync_test_new_0123456789abc"
OPTIONS = sync.SyncOptions(event_settle_seconds=0)


@pytest.fixture
def klaviyo() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_mocked=True, assert_all_called=False) as router:
        yield router


@pytest.fixture
def time_() -> FakeTime:
    return FakeTime()


async def connect(state: State, shop: Shop, key: str = KEY) -> None:
    async with unit_of_work(state.sessionmaker) as session:
        await service.save_key(session, state.cipher, shop, key)


async def run_sync(
    state: State, shop: Shop, time_: FakeTime, options: sync.SyncOptions = OPTIONS
) -> sync.SyncReport:
    async with state.sessionmaker() as session:
        connection = await KlaviyoRepository(session).connection(shop.id)
        assert connection is not None
        key = state.cipher.decrypt(connection.secret_enc) if connection.secret_enc else ""
    client = KlaviyoClient(
        http=state.http,
        base_url=BASE,
        api_key=key + str(id(time_)),
        revision=state.settings.KLAVIYO_REVISION,
        sleep=time_.sleep,
        clock=time_.clock,
        jitter=lambda: 1.0,
    )
    return await sync.sync_shop(state, shop.id, options=options, sleep=time_.sleep, client=client)


def body(call: Any) -> Any:
    return json.loads(call.request.content)


async def members(session: AsyncSession, shop: Shop, count: int, **values: Any) -> list[Member]:
    rows = [
        Member(shop_id=shop.id, email=f"m{i:04d}@example.com", points_balance=i, **values)
        for i in range(count)
    ]
    session.add_all(rows)
    await session.commit()
    return rows


async def status(state: State, shop: Shop) -> Any:
    async with state.sessionmaker() as session:
        return await service.status(session, shop)


async def test_properties_and_event_names_on_the_wire(
    klaviyo: respx.MockRouter,
    state: State,
    session: AsyncSession,
    settings: Settings,
    time_: FakeTime,
    queue: object,
) -> None:
    # given a member with every loyalty value set, Klaviyo connected, then six events
    shop = await create_shop(session, settings)
    ada = await create_member(
        session,
        shop,
        customer_id="1",
        email="ada@example.com",
        points_balance=120,
        pending_points=30,
        lifetime_points=400,
        tier_name="Silver",
        referral_code="ADA23456",
        expiring_points=50,
        expiring_at=datetime(2026, 9, 1, tzinfo=UTC),
    )
    await connect(state, shop)
    names = [
        outbox.POINTS_EARNED,
        outbox.REWARD_REDEEMED,
        outbox.TIER_CHANGED,
        outbox.POINTS_EXPIRING_SOON,
        outbox.REFERRAL_COMPLETED,
        outbox.WINBACK_FLAGGED,
    ]
    occurred = datetime(2026, 5, 4, 3, 2, 1, 999, tzinfo=UTC)
    for n, name in enumerate(names):
        await outbox.record(
            session, shop.id, ada.id, name, f"e:{n}", {"points": n, "x": None}, occurred
        )
    await session.commit()
    profile_route = klaviyo.post("/api/profile-import").mock(return_value=httpx.Response(201))
    event_route = klaviyo.post("/api/events").mock(return_value=httpx.Response(202))

    # when the shop syncs
    report = await run_sync(state, shop, time_)

    # then the profile carries the eight properties by name, the unknown one unset
    assert report.status == "ok"
    assert [body(call) for call in profile_route.calls] == [
        {
            "data": {
                "type": "profile",
                "attributes": {
                    "email": "ada@example.com",
                    "properties": {
                        "Stamp Points Balance": 120,
                        "Stamp Pending Points": 30,
                        "Stamp Lifetime Points": 400,
                        "Stamp VIP Tier": "Silver",
                        "Stamp Referral URL": f"https://{DOMAIN}/apps/stamp/r/ADA23456",
                        "Stamp Points Expiring": 50,
                        "Stamp Points Expiry Date": "2026-09-01T00:00:00+00:00",
                    },
                },
                "meta": {
                    "patch_properties": {"unset": ["Stamp Win-back Status", "Stamp Win-back Score"]}
                },
            }
        }
    ]
    # and each event carries its metric name and a stable, shop-scoped unique_id
    sent = [body(call)["data"]["attributes"] for call in event_route.calls]
    assert [e["metric"]["data"]["attributes"]["name"] for e in sent] == [
        "Stamp Points Earned",
        "Stamp Reward Redeemed",
        "Stamp Tier Changed",
        "Stamp Points Expiring Soon",
        "Stamp Referral Completed",
        "Stamp Win-back Flagged",
    ]
    assert [e["unique_id"] for e in sent] == [f"{DOMAIN}:e:{n}" for n in range(6)]
    assert sent[0] == {
        "properties": {"points": 0},
        "metric": {"data": {"type": "metric", "attributes": {"name": "Stamp Points Earned"}}},
        "time": "2026-05-04T03:02:01+00:00",
        "unique_id": f"{DOMAIN}:e:0",
        "profile": {"data": {"type": "profile", "attributes": {"email": "ada@example.com"}}},
    }
    # and nothing is left to send
    after = await status(state, shop)
    assert (after.status, after.backlog.profiles, after.backlog.events) == ("connected", 0, 0)
    assert after.last_success_at is not None
    assert after.last_error is None


async def test_a_large_backlog_goes_in_bulk_jobs_and_events_in_batches(
    klaviyo: respx.MockRouter,
    state: State,
    session: AsyncSession,
    settings: Settings,
    time_: FakeTime,
    queue: object,
) -> None:
    # given 120 members (and one without an email) and 25 events after connecting
    shop = await create_shop(session, settings)
    rows = await members(session, shop, 120)
    await create_member(session, shop, customer_id="no-email")
    await connect(state, shop)
    for n in range(25):
        member = rows[n % 5]
        await outbox.record(session, shop.id, member.id, outbox.POINTS_EARNED, f"k{n}", {"n": n})
    await session.commit()
    jobs = klaviyo.post("/api/profile-bulk-import-jobs").mock(
        side_effect=[httpx.Response(202, json={"data": {"id": f"J{i}"}}) for i in range(3)]
    )
    polls = klaviyo.get(url__regex=r"/api/profile-bulk-import-jobs/J\d$").mock(
        side_effect=[
            httpx.Response(200, json={"data": {"attributes": {"status": "processing"}}}),
            *[
                httpx.Response(200, json={"data": {"attributes": {"status": "complete"}}})
                for _ in range(3)
            ],
        ]
    )
    event_jobs = klaviyo.post("/api/event-bulk-create-jobs").mock(
        return_value=httpx.Response(202, json={"data": {"id": "E"}})
    )
    single_events = klaviyo.post("/api/events").mock(return_value=httpx.Response(202))
    options = sync.SyncOptions(
        single_profiles_max=50,
        profiles_per_job=50,
        single_events_max=3,
        events_per_job=12,
        event_settle_seconds=0,
    )

    # when the shop syncs
    report = await run_sync(state, shop, time_, options)

    # then profiles went as jobs of 50, 50 and 20, the first polled again after 1 s
    assert report.status == "ok"
    sizes = [len(body(c)["data"]["attributes"]["profiles"]["data"]) for c in jobs.calls]
    assert sizes == [50, 50, 20]
    assert polls.call_count == 4
    assert time_.sleeps == [1.0]
    first = body(jobs.calls[0])["data"]["attributes"]["profiles"]["data"][0]
    assert first["attributes"]["email"] == "m0000@example.com"
    assert first["attributes"]["properties"]["Stamp Points Balance"] == 0
    # and events went as two jobs of 12 (grouped by profile) and one on its own
    grouped = [
        body(c)["data"]["attributes"]["events-bulk-create"]["data"] for c in event_jobs.calls
    ]
    assert [sum(len(i["attributes"]["events"]["data"]) for i in items) for items in grouped] == [
        12,
        12,
    ]
    assert [len(items) for items in grouped] == [5, 5]
    assert single_events.call_count == 1
    assert (report.profiles_sent, report.events_sent, report.jobs) == (120, 25, 5)
    after = await status(state, shop)
    assert (after.backlog.profiles, after.backlog.events) == (0, 0)


async def test_unchanged_profiles_are_not_sent_again(
    klaviyo: respx.MockRouter,
    state: State,
    session: AsyncSession,
    settings: Settings,
    time_: FakeTime,
    queue: object,
) -> None:
    # given a synced member whose change mark moves without any visible change
    shop = await create_shop(session, settings)
    await create_member(session, shop, email="ada@example.com", points_balance=5)
    await connect(state, shop)
    route = klaviyo.post("/api/profile-import").mock(return_value=httpx.Response(200))
    await run_sync(state, shop, time_)
    await session.execute(update(Member).values(sync_dirty_at=utcnow()))
    await session.commit()

    # when the shop syncs again
    report = await run_sync(state, shop, time_)

    # then nothing was sent, and the member is no longer in the backlog
    assert route.call_count == 1
    assert (report.profiles_sent, report.profiles_unchanged) == (0, 1)
    assert (await status(state, shop)).backlog.profiles == 0


async def test_5xx_that_outlasts_the_retries_is_recorded_and_nothing_is_lost(
    klaviyo: respx.MockRouter,
    state: State,
    session: AsyncSession,
    settings: Settings,
    time_: FakeTime,
    queue: object,
) -> None:
    shop = await create_shop(session, settings)
    await create_member(session, shop, email="ada@example.com", points_balance=5)
    await connect(state, shop)
    route = klaviyo.post("/api/profile-import").mock(return_value=httpx.Response(503))

    report = await run_sync(state, shop, time_)

    assert report.status == "error"
    assert route.call_count == 8
    assert time_.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    failed = await status(state, shop)
    assert failed.status == "connected"
    assert failed.last_error == "Klaviyo answered 503 on POST /api/profile-import after 8 attempts"
    assert failed.backlog.profiles == 1
    # and the next run sends it
    route.mock(return_value=httpx.Response(200))
    assert (await run_sync(state, shop, time_)).status == "ok"
    recovered = await status(state, shop)
    assert (recovered.backlog.profiles, recovered.last_error) == (0, None)


async def test_409_duplicate_profile_in_a_sync_lands_on_the_existing_profile(
    klaviyo: respx.MockRouter,
    state: State,
    session: AsyncSession,
    settings: Settings,
    time_: FakeTime,
    queue: object,
) -> None:
    shop = await create_shop(session, settings)
    await create_member(session, shop, email="ada@example.com", points_balance=7)
    await connect(state, shop)
    klaviyo.post("/api/profile-import").mock(
        return_value=httpx.Response(
            409,
            json={
                "errors": [{"code": "duplicate_profile", "meta": {"duplicate_profile_id": "P9"}}]
            },
        )
    )
    patch = klaviyo.patch("/api/profiles/P9").mock(return_value=httpx.Response(200))

    report = await run_sync(state, shop, time_)

    assert report.status == "ok"
    properties = body(patch.calls[0])["data"]["attributes"]["properties"]
    assert properties["Stamp Points Balance"] == 7
    assert (await status(state, shop)).backlog.profiles == 0


async def test_revoked_key_is_shown_nothing_is_lost_and_reconnecting_resumes(
    klaviyo: respx.MockRouter,
    state: State,
    session: AsyncSession,
    settings: Settings,
    time_: FakeTime,
    queue: object,
) -> None:
    # given a synced shop whose member then earns points
    shop = await create_shop(session, settings)
    ada = await create_member(session, shop, customer_id="1", email="ada@example.com")
    await connect(state, shop)
    profiles = klaviyo.post("/api/profile-import").mock(return_value=httpx.Response(201))
    events = klaviyo.post("/api/events").mock(return_value=httpx.Response(202))
    await run_sync(state, shop, time_)
    await ledger.post(session, shop.id, ledger.Posting(ada.id, 40, "earn", "order:9:earn"))
    await session.commit()

    # when the merchant revokes the key in Klaviyo and the next sync runs
    profiles.mock(
        return_value=httpx.Response(401, json={"errors": [{"detail": "Invalid API key"}]})
    )
    revoked = await run_sync(state, shop, time_)

    # then the merchant sees why, and the change waits in the backlog
    assert revoked.status == "revoked"
    seen = await status(state, shop)
    assert seen.status == "revoked"
    assert seen.last_error is not None
    assert seen.last_error.startswith("Klaviyo refused the private key (401: Invalid API key)")
    assert (seen.backlog.profiles, seen.backlog.events) == (1, 1)
    assert (await run_sync(state, shop, time_)).status == "not_connected"

    # when the merchant connects a new key
    klaviyo.get("/api/profiles").mock(return_value=httpx.Response(200, json={"data": []}))
    profiles.mock(return_value=httpx.Response(200))
    checked = await service.check_key(state, NEW_KEY)
    await connect(state, shop, checked)
    resumed = await run_sync(state, shop, time_)

    # then the waiting profile and event are sent and the error is gone
    assert resumed.status == "ok"
    assert (
        body(profiles.calls[-1])["data"]["attributes"]["properties"]["Stamp Points Balance"] == 40
    )
    sent = body(events.calls[-1])["data"]["attributes"]
    assert sent["unique_id"] == f"{DOMAIN}:order:9:earn"
    assert sent["properties"]["points"] == 40
    final = await status(state, shop)
    assert (final.status, final.last_error, final.backlog.profiles, final.backlog.events) == (
        "connected",
        None,
        0,
        0,
    )


async def test_a_bad_key_is_refused_and_nothing_is_saved(
    klaviyo: respx.MockRouter, state: State, session: AsyncSession, settings: Settings
) -> None:
    await create_shop(session, settings)
    before = await row_counts(session)
    klaviyo.get("/api/profiles").mock(
        return_value=httpx.Response(403, json={"errors": [{"detail": "Missing scope"}]})
    )

    with pytest.raises(KlaviyoAuthError):
        await service.check_key(state, KEY)
    with pytest.raises(AppError) as malformed:
        await service.check_key(state, "sk_not_a_private_key")

    assert malformed.value.code == "klaviyo_key_invalid"
    assert await row_counts(session) == before


async def test_saving_a_key_stores_it_encrypted_and_queues_a_sync_after_commit(
    state: State, session: AsyncSession, settings: Settings, queue: Any
) -> None:
    shop = await create_shop(session, settings)

    await connect(state, shop)

    await session.rollback()
    stored = (await session.execute(select(IntegrationConnection))).scalar_one()
    assert stored.secret_enc is not None
    assert KEY.encode() not in stored.secret_enc
    assert state.cipher.decrypt(stored.secret_enc) == KEY
    assert [(task.name, task.args) for task in queue.pending()] == [("sync_klaviyo", (shop.id,))]


async def test_events_newer_than_the_settle_time_are_marked_not_resent_and_late_ones_are_sent(
    klaviyo: respx.MockRouter,
    state: State,
    session: AsyncSession,
    settings: Settings,
    time_: FakeTime,
    queue: object,
) -> None:
    # given an event sent while still inside the settle time
    shop = await create_shop(session, settings)
    ada = await create_member(session, shop, email="ada@example.com")
    await connect(state, shop)
    klaviyo.post("/api/profile-import").mock(return_value=httpx.Response(200))
    events = klaviyo.post("/api/events").mock(return_value=httpx.Response(202))
    session.add(
        MemberEvent(
            id=900_000,
            shop_id=shop.id,
            member_id=ada.id,
            name=outbox.POINTS_EARNED,
            unique_id="high",
            properties={},
            occurred_at=utcnow(),
            created_at=utcnow(),
        )
    )
    await session.commit()
    waiting = sync.SyncOptions(event_settle_seconds=3600)
    await run_sync(state, shop, time_, waiting)

    # when an event with a lower id commits late (PostgreSQL ids are not commit order)
    session.add(
        MemberEvent(
            id=800_000,
            shop_id=shop.id,
            member_id=ada.id,
            name=outbox.POINTS_EARNED,
            unique_id="late",
            properties={},
            occurred_at=utcnow(),
            created_at=utcnow(),
        )
    )
    await session.commit()
    await run_sync(state, shop, time_, waiting)

    # then each was sent exactly once, and the cursor waits for the settle time
    assert [body(c)["data"]["attributes"]["unique_id"] for c in events.calls] == [
        f"{DOMAIN}:high",
        f"{DOMAIN}:late",
    ]
    await session.rollback()
    connection = (await session.execute(select(IntegrationConnection))).scalar_one()
    assert connection.event_cursor < 800_000
    # and once settled, the cursor passes both and their marks are dropped
    await run_sync(state, shop, time_, OPTIONS)
    await session.rollback()
    connection = (await session.execute(select(IntegrationConnection))).scalar_one()
    assert connection.event_cursor == 900_000
    assert await session.scalar(select(func.count()).select_from(EventSync)) == 0
    assert events.call_count == 2


async def test_a_held_lease_makes_another_run_step_aside(
    state: State, session: AsyncSession, settings: Settings, time_: FakeTime, queue: object
) -> None:
    shop = await create_shop(session, settings)
    await connect(state, shop)
    async with unit_of_work(state.sessionmaker) as uow:
        now = utcnow()
        assert await KlaviyoRepository(uow).acquire_lease(
            shop.id, now, datetime(2999, 1, 1, tzinfo=UTC)
        )

    report = await run_sync(state, shop, time_)

    assert report.status == "busy"


async def test_the_sweep_finds_connected_shops_with_work_only(
    klaviyo: respx.MockRouter,
    state: State,
    session: AsyncSession,
    settings: Settings,
    time_: FakeTime,
    queue: object,
) -> None:
    shop = await create_shop(session, settings)
    other = await create_shop(session, settings, domain="other-shop.myshopify.com")
    await create_member(session, shop, email="ada@example.com")
    await create_member(session, other, email="bob@example.com")
    await connect(state, shop)
    assert await sync.shops_due(state) == [shop.id]
    klaviyo.post("/api/profile-import").mock(return_value=httpx.Response(200))

    await run_sync(state, shop, time_)

    assert await sync.shops_due(state) == []


@pytest.fixture
async def api(state: State) -> AsyncIterator[httpx.AsyncClient]:
    """The status route on its own app (the lead mounts it in app.api.routes)."""
    application = Starlette(routes=routes, exception_handlers={AppError: _app_error})

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = dict(scope, state={"stamp": state})
        await application(scope, receive, send)

    transport = httpx.ASGITransport(app=asgi)
    async with httpx.AsyncClient(transport=transport, base_url="https://stamp.test") as http:
        yield http


async def test_status_route_shows_connection_backlog_and_last_error(
    api: httpx.AsyncClient, state: State, session: AsyncSession, settings: Settings, queue: object
) -> None:
    shop = await create_shop(session, settings)
    headers = await api_key_for(session, shop)
    before = await api.get("/api/v1/integrations/klaviyo/status", headers=headers)
    await create_member(session, shop, email="ada@example.com")
    await connect(state, shop)
    async with unit_of_work(state.sessionmaker) as uow:
        await KlaviyoRepository(uow).record(
            shop.id, status="revoked", last_error="Klaviyo refused the private key (401)"
        )

    response = await api.get("/api/v1/integrations/klaviyo/status", headers=headers)

    assert before.json()["status"] == "not_connected"
    assert response.status_code == 200
    data = response.json()
    assert (data["status"], data["last_error"], data["backlog"]) == (
        "revoked",
        "Klaviyo refused the private key (401)",
        {"profiles": 1, "events": 0},
    )
    assert (await api.get("/api/v1/integrations/klaviyo/status")).status_code == 401


async def test_disconnecting_forgets_what_was_sent(
    klaviyo: respx.MockRouter,
    state: State,
    session: AsyncSession,
    settings: Settings,
    time_: FakeTime,
    queue: object,
) -> None:
    shop = await create_shop(session, settings)
    await create_member(session, shop, email="ada@example.com")
    await connect(state, shop)
    klaviyo.post("/api/profile-import").mock(return_value=httpx.Response(200))
    await run_sync(state, shop, time_)

    async with unit_of_work(state.sessionmaker) as uow:
        assert await service.disconnect(uow, shop) is True
    gone = await status(state, shop)
    await connect(state, shop, NEW_KEY)

    assert (gone.status, gone.backlog.profiles) == ("disconnected", 0)
    assert (await status(state, shop)).backlog.profiles == 1
    await session.rollback()
    stored = (await session.execute(select(IntegrationConnection))).scalar_one()
    assert stored.secret_enc is not None
    assert state.cipher.decrypt(stored.secret_enc) == NEW_KEY
