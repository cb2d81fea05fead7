"""The Mailchimp connector against respx: names on the wire, the consent rule, batch
operations for large syncs, 429 handling, and refusals that store nothing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import httpx
import pytest
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import unit_of_work
from app.errors import AppError
from app.integrations.mailchimp import service, sync
from app.integrations.mailchimp.client import MailchimpAuthError
from app.models import ConnectorConnection, EmailConsent, Member, Shop
from app.models.base import utcnow
from app.program.service import ensure_default_program
from app.state import State
from tests.builders import create_member, create_shop, row_counts
from tests.integrations.klaviyo.support import FakeTime

KEY = "0123456789abcdef0123456789abcdef-us6"
BASE = "https://us6.api.mailchimp.com/3.0"
LIST = "a1b2c3d4e5"


def md5(email: str) -> str:
    return hashlib.md5(email.lower().encode()).hexdigest()


@pytest.fixture
def mailchimp() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_mocked=True, assert_all_called=False) as router:
        yield router


async def connected_shop(
    state: State, session: AsyncSession, *, add_transactional: bool = False
) -> Shop:
    shop = await create_shop(session, state.settings)
    await ensure_default_program(session, shop)
    await session.commit()
    async with unit_of_work(state.sessionmaker) as uow:
        await service.save(uow, state.cipher, shop, KEY, LIST, add_transactional=add_transactional)
    return shop


async def consent(session: AsyncSession, shop: Shop, customer_id: str, state_: str) -> None:
    session.add(
        EmailConsent(shop_id=shop.id, customer_id=customer_id, state=state_, updated_at=utcnow())
    )
    await session.commit()


def results_archive(results: list[dict[str, object]]) -> bytes:
    """A batch's results as Mailchimp serves them: a gzipped tar of JSON arrays."""
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = json.dumps(results).encode()
        info = tarfile.TarInfo("b-1/0.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def sent(route: respx.Route) -> list[tuple[str, str, dict[str, object]]]:
    return [
        (call.request.method, call.request.url.path, json.loads(call.request.content))
        for call in route.calls
    ]


async def test_consented_members_are_upserted_others_only_updated_if_present(
    mailchimp: respx.MockRouter, session: AsyncSession, state: State
) -> None:
    # given a subscribed Gold member, and one who never consented and is not in the audience
    shop = await connected_shop(state, session)
    await create_member(
        session,
        shop,
        customer_id="1",
        email="Ann@Example.com",
        referral_code="ANN00001",
        tier_name="Gold",
        points_balance=120,
    )
    await create_member(session, shop, customer_id="2", email="bob@example.com")
    await consent(session, shop, "1", "subscribed")
    members = mailchimp.route(path__startswith=f"/lists/{LIST}/members/")
    members.side_effect = lambda request: httpx.Response(
        404 if request.method == "PATCH" else 200, json={}
    )
    time_ = FakeTime()

    # when the sync runs
    report = await sync.sync_shop(state, shop.id, sleep=time_.sleep)

    # then Ann is upserted by her subscriber hash with the merge fields, then tagged;
    # Bob is only PATCHed (never added), and his 404 is left alone
    assert (report.status, report.upserted, report.absent) == ("ok", 1, 1)
    calls = sent(members)
    ann = f"/3.0/lists/{LIST}/members/{md5('ann@example.com')}"
    assert calls[0] == (
        "PUT",
        ann,
        {
            "email_address": "Ann@Example.com",
            "status_if_new": "subscribed",
            "merge_fields": {
                "STAMP_PTS": 120,
                "STAMP_TIER": "Gold",
                "STAMP_REF": "https://some-shop.myshopify.com/apps/stamp/r/ANN00001",
                "STAMP_WB": "",
            },
        },
    )
    method, path, body = calls[1]
    assert (method, path) == ("POST", ann + "/tags")
    active = [tag["name"] for tag in body["tags"] if tag["status"] == "active"]  # type: ignore[index, union-attr]
    assert active == ["Stamp tier: Gold"]
    assert {"name": "Stamp win-back: at_risk", "status": "inactive"} in body["tags"]  # type: ignore[operator]
    assert calls[2][:2] == ("PATCH", f"/3.0/lists/{LIST}/members/{md5('bob@example.com')}")
    assert "status_if_new" not in calls[2][2]
    assert "status" not in calls[2][2]
    assert len(calls) == 3

    # and a second run sends nothing

    again = await sync.sync_shop(state, shop.id, sleep=time_.sleep)
    assert (again.upserted, again.updated, again.absent, members.call_count) == (0, 0, 0, 3)


async def test_opting_in_adds_non_consenting_members_as_transactional(
    mailchimp: respx.MockRouter, session: AsyncSession, state: State
) -> None:
    shop = await connected_shop(state, session, add_transactional=True)
    await create_member(session, shop, customer_id="2", email="bob@example.com")
    members = mailchimp.route(path__startswith=f"/lists/{LIST}/members/").respond(200, json={})

    await sync.sync_shop(state, shop.id)

    method, _, body = sent(members)[0]
    assert (method, body["status_if_new"]) == ("PUT", "transactional")


async def test_a_large_backlog_goes_as_batch_operations(
    mailchimp: respx.MockRouter, session: AsyncSession, state: State
) -> None:
    # given three members and a sync that batches above one
    shop = await connected_shop(state, session)
    ids = [
        (await create_member(session, shop, customer_id=str(n), email=f"m{n}@example.com")).id
        for n in range(3)
    ]
    await consent(session, shop, "0", "subscribed")
    start = mailchimp.post("/batches").respond(200, json={"id": "b-1", "status": "pending"})
    poll = mailchimp.get("/batches/b-1")
    poll.side_effect = [
        httpx.Response(200, json={"id": "b-1", "status": "started"}),
        httpx.Response(
            200,
            json={
                "id": "b-1",
                "status": "finished",
                "total_operations": 6,
                "finished_operations": 6,
                "errored_operations": 3,
                "response_body_url": f"{BASE}/results/b-1.tar.gz",
            },
        ),
    ]
    mailchimp.get("/results/b-1.tar.gz").respond(
        200,
        content=results_archive(
            [
                {"status_code": 200, "operation_id": f"member-{ids[0]}", "response": "{}"},
                {"status_code": 404, "operation_id": f"member-{ids[1]}", "response": "{}"},
                {"status_code": 404, "operation_id": f"member-{ids[1]}-tags", "response": "{}"},
                {"status_code": 400, "operation_id": f"member-{ids[2]}", "response": '"fake"'},
            ]
        ),
    )
    time_ = FakeTime()

    # when the sync runs
    report = await sync.sync_shop(
        state, shop.id, options=sync.MailchimpOptions(single_max=1), sleep=time_.sleep
    )

    # then one batch carried an upsert or update and a tag call per member, as JSON strings
    assert (report.status, report.batches, report.errored_operations) == ("ok", 1, 3)
    assert (report.upserted, report.updated, report.absent) == (1, 1, 1)
    assert report.rejections == [f'member {ids[2]}: HTTP 400: "fake"']
    operations = json.loads(start.calls[0].request.content)["operations"]
    assert [(op["method"], op["path"]) for op in operations] == [
        ("PUT", f"/lists/{LIST}/members/{md5('m0@example.com')}"),
        ("POST", f"/lists/{LIST}/members/{md5('m0@example.com')}/tags"),
        ("PATCH", f"/lists/{LIST}/members/{md5('m1@example.com')}"),
        ("POST", f"/lists/{LIST}/members/{md5('m1@example.com')}/tags"),
        ("PATCH", f"/lists/{LIST}/members/{md5('m2@example.com')}"),
        ("POST", f"/lists/{LIST}/members/{md5('m2@example.com')}/tags"),
    ]
    assert json.loads(operations[0]["body"])["status_if_new"] == "subscribed"
    assert json.loads(operations[2]["body"]) == {
        "merge_fields": {"STAMP_PTS": 0, "STAMP_TIER": "", "STAMP_REF": "", "STAMP_WB": ""}
    }
    assert time_.sleeps == [2.0]
    again = await sync.sync_shop(state, shop.id, options=sync.MailchimpOptions(single_max=1))
    assert (again.batches, start.call_count) == (0, 1)


async def test_429_waits_retry_after_then_sends(
    mailchimp: respx.MockRouter, session: AsyncSession, state: State
) -> None:
    shop = await connected_shop(state, session)
    await create_member(session, shop, customer_id="1", email="ann@example.com")
    await consent(session, shop, "1", "subscribed")
    put = mailchimp.put(path__startswith=f"/lists/{LIST}/members/")
    put.side_effect = [
        httpx.Response(429, headers={"Retry-After": "7"}, json={"title": "Too Many Requests"}),
        httpx.Response(200, json={}),
    ]
    mailchimp.post(path__regex=r"/tags$").respond(204)
    time_ = FakeTime()

    report = await sync.sync_shop(state, shop.id, sleep=time_.sleep)

    assert (report.status, report.upserted, put.call_count, time_.sleeps) == ("ok", 1, 2, [7.0])


async def test_a_revoked_key_is_recorded_on_the_connection(
    mailchimp: respx.MockRouter, session: AsyncSession, state: State
) -> None:
    shop = await connected_shop(state, session)
    await create_member(session, shop, customer_id="1", email="ann@example.com")
    mailchimp.route(path__startswith="/lists/").respond(
        401, json={"title": "API Key Invalid", "detail": "Your API key may be invalid"}
    )

    report = await sync.sync_shop(state, shop.id)

    assert report.status == "revoked"
    connection = await session.scalar(select(ConnectorConnection))
    assert connection is not None
    assert connection.status == "revoked"
    assert connection.last_error is not None
    assert "Your API key may be invalid" in connection.last_error


async def test_connecting_creates_the_missing_merge_fields(
    mailchimp: respx.MockRouter, state: State
) -> None:
    mailchimp.get("/ping").respond(200, json={"health_status": "Everything's Chimpy!"})
    mailchimp.get(f"/lists/{LIST}").respond(200, json={"id": LIST, "name": "Shop"})
    mailchimp.get(f"/lists/{LIST}/merge-fields").respond(
        200, json={"merge_fields": [{"tag": "FNAME"}, {"tag": "STAMP_PTS"}]}
    )
    created = mailchimp.post(f"/lists/{LIST}/merge-fields").respond(200, json={})

    key = await service.prepare(state, KEY, LIST)

    assert key == KEY
    assert [json.loads(c.request.content) for c in created.calls] == [
        {"tag": "STAMP_TIER", "name": "Stamp VIP tier", "type": "text"},
        {"tag": "STAMP_REF", "name": "Stamp referral URL", "type": "url"},
        {"tag": "STAMP_WB", "name": "Stamp win-back status", "type": "text"},
    ]
    auth = mailchimp.calls[0].request.headers["authorization"]
    assert auth.startswith("Basic ")


@pytest.mark.parametrize("key", ["not-a-key", "0123456789abcdef0123456789abcdef"])
async def test_a_malformed_key_is_refused_before_any_request(
    mailchimp: respx.MockRouter, state: State, session: AsyncSession, key: str
) -> None:
    before = await row_counts(session)
    with pytest.raises(AppError) as refused:
        await service.prepare(state, key, LIST)
    assert refused.value.code == "mailchimp_key_invalid"
    assert mailchimp.calls.call_count == 0
    assert await row_counts(session) == before


async def test_a_rejected_key_is_refused_with_mailchimps_reason(
    mailchimp: respx.MockRouter, state: State, session: AsyncSession
) -> None:
    mailchimp.get("/ping").respond(401, json={"title": "API Key Invalid", "detail": "Nope"})
    before = await row_counts(session)
    with pytest.raises(MailchimpAuthError) as refused:
        await service.prepare(state, KEY, LIST)
    assert "Nope" in refused.value.message
    assert await row_counts(session) == before


async def test_members_without_email_are_marked_without_a_request(
    mailchimp: respx.MockRouter, session: AsyncSession, state: State
) -> None:
    shop = await connected_shop(state, session)
    await create_member(session, shop, customer_id="1")

    report = await sync.sync_shop(state, shop.id)

    assert (report.status, mailchimp.calls.call_count) == ("ok", 0)
    assert await sync.shops_due(state) == []
    assert (await session.scalar(select(Member.id))) is not None


async def test_the_status_endpoint_shows_the_audience_and_backlog(
    client: httpx.AsyncClient, session: AsyncSession, state: State
) -> None:
    from tests.builders import api_key_for

    shop = await connected_shop(state, session, add_transactional=True)
    await create_member(session, shop, customer_id="1", email="ann@example.com")
    headers = await api_key_for(session, shop)

    response = await client.get("/api/v1/integrations/mailchimp/status", headers=headers)

    body = response.json()
    assert body["connected_at"] is not None
    del body["connected_at"]
    assert body == {
        "status": "connected",
        "audience_id": LIST,
        "add_transactional": True,
        "last_success_at": None,
        "last_error": None,
        "backlog": 1,
    }


async def test_consent_withdrawn_in_shopify_unsubscribes_the_existing_contact_only(
    mailchimp: respx.MockRouter, session: AsyncSession, state: State
) -> None:
    # given a member who unsubscribed in Shopify, and a merchant who adds transactional
    shop = await connected_shop(state, session, add_transactional=True)
    await create_member(session, shop, customer_id="3", email="cy@example.com")
    await consent(session, shop, "3", "unsubscribed")
    members = mailchimp.route(path__startswith=f"/lists/{LIST}/members/").respond(200, json={})

    # when the sync runs
    await sync.sync_shop(state, shop.id)

    # then the existing contact is PATCHed to unsubscribed; nobody is added
    method, path, body = sent(members)[0]
    assert (method, path) == ("PATCH", f"/3.0/lists/{LIST}/members/{md5('cy@example.com')}")
    assert body["status"] == "unsubscribed"
    assert "status_if_new" not in body
