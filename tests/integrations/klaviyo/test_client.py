"""The Klaviyo client: headers, pacing, 429 with Retry-After, 5xx backoff, the 409 case."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx

from app.integrations.klaviyo.client import (
    JOBS,
    KlaviyoAuthError,
    KlaviyoClient,
    KlaviyoRejected,
    KlaviyoUnavailable,
    Limit,
    Pacer,
)
from tests.integrations.klaviyo.support import FakeTime

BASE = "https://a.klaviyo.com"
KEY = "pk_client_test_0123456789"
PROFILE = {
    "type": "profile",
    "attributes": {"email": "ada@example.com", "properties": {"Stamp Points Balance": 120}},
    "meta": {"patch_properties": {"unset": ["Stamp VIP Tier"]}},
}


@pytest.fixture
def klaviyo() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_mocked=True, assert_all_called=False) as router:
        yield router


@pytest.fixture
def time_() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def client(time_: FakeTime) -> AsyncIterator[KlaviyoClient]:
    async with httpx.AsyncClient() as http:
        yield KlaviyoClient(
            http=http,
            base_url=BASE,
            api_key=f"{KEY}{id(time_)}",  # a pacer of its own, untouched by other tests
            revision="2026-07-15",
            sleep=time_.sleep,
            clock=time_.clock,
            jitter=lambda: 1.0,
        )


async def test_requests_carry_the_key_the_revision_and_json_api(
    klaviyo: respx.MockRouter, client: KlaviyoClient
) -> None:
    route = klaviyo.post("/api/profile-import").mock(return_value=httpx.Response(201, json={}))

    result = await client.import_profile(PROFILE)

    assert result == "created"
    sent = route.calls[0].request
    assert sent.headers["Authorization"] == f"Klaviyo-API-Key {client.api_key}"
    assert sent.headers["revision"] == "2026-07-15"
    assert sent.headers["Content-Type"] == "application/vnd.api+json"
    assert sent.headers["Accept"] == "application/vnd.api+json"
    assert json.loads(sent.content) == {"data": PROFILE}


async def test_429_waits_retry_after_seconds_then_retries(
    klaviyo: respx.MockRouter, client: KlaviyoClient, time_: FakeTime
) -> None:
    # given Klaviyo throttles the first call and asks for 7 seconds
    route = klaviyo.post("/api/profile-import").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "7"}, json={"errors": []}),
            httpx.Response(200, json={}),
        ]
    )

    # when one profile is imported
    result = await client.import_profile(PROFILE)

    # then the client waited exactly 7 s and the retry went through
    assert result == "updated"
    assert time_.sleeps == [7.0]
    assert route.call_count == 2
    assert client.requests == 2


async def test_5xx_is_retried_with_doubling_backoff(
    klaviyo: respx.MockRouter, client: KlaviyoClient, time_: FakeTime
) -> None:
    route = klaviyo.post("/api/events").mock(
        side_effect=[httpx.Response(503), httpx.Response(502), httpx.Response(202)]
    )

    await client.create_event({"type": "event", "attributes": {}})

    assert time_.sleeps == [0.5, 1.0]
    assert route.call_count == 3


async def test_network_errors_are_retried_like_5xx(
    klaviyo: respx.MockRouter, client: KlaviyoClient, time_: FakeTime
) -> None:
    klaviyo.post("/api/events").mock(
        side_effect=[httpx.ConnectError("reset by peer"), httpx.Response(202)]
    )

    await client.create_event({"type": "event", "attributes": {}})

    assert time_.sleeps == [0.5]


async def test_5xx_on_every_attempt_gives_up_retryably(
    klaviyo: respx.MockRouter, client: KlaviyoClient, time_: FakeTime
) -> None:
    client.max_attempts = 3
    route = klaviyo.post("/api/events").mock(return_value=httpx.Response(500))

    with pytest.raises(KlaviyoUnavailable) as raised:
        await client.create_event({"type": "event", "attributes": {}})

    assert raised.value.retryable is True
    assert raised.value.message == "Klaviyo answered 500 on POST /api/events after 3 attempts"
    assert route.call_count == 3
    assert time_.sleeps == [0.5, 1.0]


async def test_409_duplicate_profile_is_patched_onto_the_existing_profile(
    klaviyo: respx.MockRouter, client: KlaviyoClient
) -> None:
    # given the email and another identifier belong to two different profiles
    klaviyo.post("/api/profile-import").mock(
        return_value=httpx.Response(
            409,
            json={
                "errors": [
                    {
                        "id": "e1",
                        "status": 409,
                        "code": "duplicate_profile",
                        "title": "Conflict.",
                        "detail": "A profile already exists with one of these identifiers.",
                        "meta": {"duplicate_profile_id": "01HDUPLICATE"},
                    }
                ]
            },
        )
    )
    patch = klaviyo.patch("/api/profiles/01HDUPLICATE").mock(
        return_value=httpx.Response(200, json={})
    )

    # when the profile is imported
    result = await client.import_profile(PROFILE)

    # then the properties land on the existing profile, its identifiers untouched
    assert result == "merged"
    assert json.loads(patch.calls[0].request.content) == {
        "data": {
            "type": "profile",
            "id": "01HDUPLICATE",
            "attributes": {"properties": {"Stamp Points Balance": 120}},
            "meta": {"patch_properties": {"unset": ["Stamp VIP Tier"]}},
        }
    }


async def test_401_is_a_rejected_key_and_is_not_retried(
    klaviyo: respx.MockRouter, client: KlaviyoClient, time_: FakeTime
) -> None:
    route = klaviyo.get("/api/profiles").mock(
        return_value=httpx.Response(
            401,
            json={"errors": [{"code": "not_authenticated", "detail": "Incorrect credentials."}]},
        )
    )

    with pytest.raises(KlaviyoAuthError) as raised:
        await client.check_key()

    assert raised.value.message.startswith(
        "Klaviyo refused the private key (401: Incorrect credentials.)"
    )
    assert route.call_count == 1
    assert time_.sleeps == []


async def test_400_is_rejected_with_klaviyos_words(
    klaviyo: respx.MockRouter, client: KlaviyoClient
) -> None:
    klaviyo.post("/api/profile-import").mock(
        return_value=httpx.Response(
            400, json={"errors": [{"code": "invalid", "detail": "Invalid email address"}]}
        )
    )

    with pytest.raises(KlaviyoRejected) as raised:
        await client.import_profile(PROFILE)

    assert raised.value.message == "Klaviyo refused the profile (400: Invalid email address)"


async def test_bulk_job_status_is_read_from_its_attributes(
    klaviyo: respx.MockRouter, client: KlaviyoClient
) -> None:
    klaviyo.get("/api/profile-bulk-import-jobs/J1").mock(
        return_value=httpx.Response(
            200,
            json={
                "data": {
                    "type": "profile-bulk-import-job",
                    "id": "J1",
                    "attributes": {
                        "status": "complete",
                        "total_count": 3,
                        "completed_count": 2,
                        "failed_count": 1,
                    },
                }
            },
        )
    )

    status = await client.profile_import_job("J1")

    assert (status.status, status.total, status.completed, status.failed, status.done) == (
        "complete",
        3,
        2,
        1,
        True,
    )


async def test_pacer_holds_the_76th_request_of_a_second_and_the_701st_of_a_minute() -> None:
    time_ = FakeTime()
    pacer = Pacer(Limit(burst=75, steady=700))

    for _ in range(75):
        await pacer.acquire(time_.clock, time_.sleep)
    await pacer.acquire(time_.clock, time_.sleep)

    assert time_.sleeps == [1.0]
    for _ in range(700 - 76):
        await pacer.acquire(time_.clock, time_.sleep)
    started = time_.now
    await pacer.acquire(time_.clock, time_.sleep)
    assert time_.now - started == pytest.approx(1_000.0 + 60.0 - started)


async def test_bulk_job_tier_allows_ten_a_second() -> None:
    time_ = FakeTime()
    pacer = Pacer(JOBS)

    for _ in range(11):
        await pacer.acquire(time_.clock, time_.sleep)

    assert time_.sleeps == [1.0]
