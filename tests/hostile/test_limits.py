"""Edge limits: oversized bodies refused before reading; storefront rate limits per client."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message

from app.integrations.shopify.signing import app_proxy_signature
from app.limits.body import BodySizeLimit, body_limit
from app.limits.rate import (
    Bucket,
    MemoryBackend,
    RedisBackend,
    StorefrontRateLimit,
    client_address,
    client_key,
    query_items,
    retry_after_header,
    take,
)
from app.main import _http_error, create_app
from app.settings import Settings
from app.state import State
from tests.builders import DOMAIN, api_key_for, create_shop, row_counts, shopify_webhook
from tests.conftest import REDIS_URL, _with_state, make_settings, service_missing

SECRET = "test-shopify-secret-0123456789abcdef0123"
MB = 1024 * 1024


def proxy_url(path: str, customer_id: str = "207119551", **extra: str) -> str:
    params = {
        "shop": DOMAIN,
        "logged_in_customer_id": customer_id,
        "path_prefix": "/apps/stamp",
        "timestamp": str(int(time.time())),
        **extra,
    }
    params["signature"] = app_proxy_signature(SECRET, params.items())
    return f"/proxy/{path}?{urlencode(params)}"


# --- body size -------------------------------------------------------------------------------


async def echo_length(request: Request) -> Response:
    body = await request.body()
    return JSONResponse({"length": len(body)})


def limited_app(webhook_limit: int = 5 * MB, request_limit: int = MB) -> Starlette:
    return Starlette(
        routes=[
            Route("/webhooks/shopify", echo_length, methods=["POST"]),
            Route("/api/v1/events", echo_length, methods=["POST"]),
        ],
        middleware=[
            Middleware(BodySizeLimit, webhook_limit=webhook_limit, request_limit=request_limit)
        ],
        exception_handlers={HTTPException: _http_error},
    )


def test_webhooks_get_the_webhook_limit_and_everything_else_the_request_limit() -> None:
    assert body_limit("/webhooks/shopify", 5 * MB, MB) == 5 * MB
    assert body_limit("/webhooks/woocommerce/7", 5 * MB, MB) == 5 * MB
    assert body_limit("/api/v1/events", 5 * MB, MB) == MB
    assert body_limit("/proxy/api/redeem", 5 * MB, MB) == MB
    assert body_limit("/webhooksx", 5 * MB, MB) == MB


async def test_a_declared_length_over_the_limit_is_refused_without_reading_the_body() -> None:
    received: list[Message] = []
    sent: list[Message] = []

    async def receive() -> Message:
        received.append({"type": "http.request"})
        raise AssertionError("the body must not be read")

    async def send(message: Message) -> None:
        sent.append(message)

    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/webhooks/shopify",
        "headers": [(b"content-length", str(5 * MB + 1).encode())],
        "query_string": b"",
    }
    await limited_app()(scope, receive, send)

    assert received == []
    assert sent[0]["status"] == 413
    assert sent[1]["body"] == (
        b'{"error":{"code":"payload_too_large","message":"The request body exceeds 5 MB"}}'
    )


async def test_a_body_at_the_limit_passes_untouched() -> None:
    transport = httpx.ASGITransport(app=limited_app())
    async with httpx.AsyncClient(transport=transport, base_url="https://stamp.test") as http:
        webhook = await http.post("/webhooks/shopify", content=b"x" * (5 * MB))
        api = await http.post("/api/v1/events", content=b"x" * MB)

    assert (webhook.status_code, webhook.json()) == (200, {"length": 5 * MB})
    assert (api.status_code, api.json()) == (200, {"length": MB})


async def test_the_api_refuses_one_byte_over_a_megabyte() -> None:
    transport = httpx.ASGITransport(app=limited_app())
    async with httpx.AsyncClient(transport=transport, base_url="https://stamp.test") as http:
        response = await http.post("/api/v1/events", content=b"x" * (MB + 1))

    assert response.status_code == 413
    assert response.json() == {
        "error": {"code": "payload_too_large", "message": "The request body exceeds 1 MB"}
    }


async def test_a_chunked_body_stops_being_read_at_the_first_chunk_past_the_limit() -> None:
    pulled: list[int] = []
    chunk = b"x" * (64 * 1024)

    async def endless() -> AsyncIterator[bytes]:
        for number in range(1000):  # 64 MB if it were all read
            pulled.append(number)
            yield chunk

    transport = httpx.ASGITransport(app=limited_app())
    async with httpx.AsyncClient(transport=transport, base_url="https://stamp.test") as http:
        response = await http.post("/webhooks/shopify", content=endless())

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    # 80 chunks are exactly 5 MB; the 81st crosses the limit and nothing after it is read.
    assert len(pulled) == 81


async def test_the_real_app_refuses_an_oversized_webhook_and_writes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await create_shop(session, settings)
    body, headers = shopify_webhook(settings, "orders/paid", b"{" + b" " * (5 * MB) + b"}")
    before = await row_counts(session)

    response = await client.post("/webhooks/shopify", content=body, headers=headers)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert await row_counts(session) == before


async def test_the_real_app_refuses_an_oversized_api_body_and_writes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    headers = await api_key_for(session, shop)
    before = await row_counts(session)

    response = await client.post(
        "/api/v1/events", content=b'{"a": "' + b"x" * MB + b'"}', headers=headers
    )

    assert response.status_code == 413
    assert await row_counts(session) == before


# --- rate limits: the pure parts --------------------------------------------------------------


def test_a_new_bucket_starts_full_and_spends_one_token() -> None:
    assert take(None, 100.0, 2.0, 5).bucket == Bucket(4.0, 100.0)


def test_an_empty_bucket_refuses_and_says_when_a_token_will_be_back() -> None:
    decision = take(Bucket(0.25, 100.0), 100.0, 0.5, 5)

    assert decision.allowed is False
    assert decision.retry_after == 1.5
    assert retry_after_header(decision.retry_after) == "2"


def test_a_bucket_refills_with_time_but_never_past_its_burst() -> None:
    assert take(Bucket(0.0, 100.0), 102.0, 0.5, 5).bucket == Bucket(0.0, 102.0)
    assert take(Bucket(1.0, 100.0), 10_000.0, 0.5, 5).bucket == Bucket(4.0, 10_000.0)


def test_retry_after_is_never_zero() -> None:
    assert retry_after_header(0.001) == "1"


def test_without_trusted_proxies_the_peer_is_the_client_and_the_header_is_ignored() -> None:
    assert client_address("198.51.100.7", "203.0.113.9", 0) == "198.51.100.7"


def test_with_one_trusted_proxy_the_rightmost_forwarded_address_is_the_client() -> None:
    spoofed = "1.2.3.4, 203.0.113.9"  # the client wrote 1.2.3.4; our proxy appended the rest

    assert client_address("10.0.0.2", spoofed, 1) == "203.0.113.9"
    assert client_address("10.0.0.2", "203.0.113.9", 2) == "203.0.113.9"
    assert client_address("10.0.0.2", None, 1) == "10.0.0.2"


def test_a_signed_in_shopper_behind_the_app_proxy_is_keyed_by_shop_and_customer() -> None:
    url = proxy_url("api/state")
    query = httpx.URL(url).params.multi_items()

    key = client_key(
        "/proxy/api/state", query, "10.0.0.2", "203.0.113.9", secret=SECRET, trusted_hops=0
    )

    assert key == f"customer:{DOMAIN}:207119551"


def test_a_forged_customer_id_is_keyed_by_ip_not_by_the_claim() -> None:
    query = [("shop", DOMAIN), ("logged_in_customer_id", "1"), ("signature", "0" * 64)]

    key = client_key(
        "/proxy/api/state", query, "10.0.0.2", "203.0.113.9", secret=SECRET, trusted_hops=0
    )

    assert key == "ip:10.0.0.2"


def test_a_signed_guest_is_keyed_by_the_address_shopify_forwarded() -> None:
    query = httpx.URL(proxy_url("api/state", customer_id="")).params.multi_items()

    key = client_key(
        "/proxy/api/state",
        query,
        "23.227.38.1",
        "1.2.3.4, 203.0.113.9",
        secret=SECRET,
        trusted_hops=0,
    )

    assert key == "ip:203.0.113.9"


# --- rate limits: the middleware --------------------------------------------------------------


async def ok(request: Request) -> Response:
    return JSONResponse({"ok": True})


def rate_limited_app(backend: Any, *, burst: int = 3, trusted_hops: int = 1) -> Starlette:
    return Starlette(
        routes=[
            Route("/proxy/api/state", ok),
            Route("/woo/api/state", ok),
            Route("/woo/api/{path:path}", ok, methods=["OPTIONS"]),
            Route("/api/v1/members", ok),
            Route("/webhooks/shopify", ok, methods=["POST"]),
        ],
        middleware=[
            Middleware(
                StorefrontRateLimit,
                secret=SECRET,
                rate=0.001,
                burst=burst,
                trusted_hops=trusted_hops,
                backend=backend,
            )
        ],
    )


def http_for(application: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="https://stamp.test"
    )


async def test_a_shopper_past_the_burst_gets_429_with_retry_after() -> None:
    application = rate_limited_app(MemoryBackend(clock=lambda: 100.0))
    async with http_for(application) as http:
        allowed = [(await http.get(proxy_url("api/state"))).status_code for _ in range(3)]
        refused = await http.get(proxy_url("api/state"))

    assert allowed == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1000"
    assert refused.json() == {
        "error": {"code": "rate_limited", "message": "Too many requests; slow down"}
    }


async def test_one_shoppers_limit_leaves_another_shopper_alone() -> None:
    application = rate_limited_app(MemoryBackend(clock=lambda: 100.0), burst=1)
    async with http_for(application) as http:
        first = await http.get(proxy_url("api/state", customer_id="1"))
        again = await http.get(proxy_url("api/state", customer_id="1"))
        other = await http.get(proxy_url("api/state", customer_id="2"))

    assert [first.status_code, again.status_code, other.status_code] == [200, 429, 200]


async def test_woocommerce_clients_are_limited_per_forwarded_address() -> None:
    application = rate_limited_app(MemoryBackend(clock=lambda: 100.0), burst=1)
    async with http_for(application) as http:
        first = await http.get("/woo/api/state", headers={"X-Forwarded-For": "203.0.113.9"})
        spoofed = await http.get(
            "/woo/api/state",
            headers={"X-Forwarded-For": "9.9.9.9, 203.0.113.9", "Origin": "https://shop.test"},
        )
        other = await http.get("/woo/api/state", headers={"X-Forwarded-For": "203.0.113.10"})
        preflight = await http.options("/woo/api/state", headers={"X-Forwarded-For": "203.0.113.9"})

    assert [first.status_code, spoofed.status_code, other.status_code] == [200, 429, 200]
    assert spoofed.headers["access-control-allow-origin"] == "https://shop.test"
    assert preflight.status_code == 200


async def test_the_api_and_webhooks_are_not_storefront_limited() -> None:
    application = rate_limited_app(MemoryBackend(clock=lambda: 100.0), burst=1)
    async with http_for(application) as http:
        api = [(await http.get("/api/v1/members")).status_code for _ in range(3)]
        hooks = [(await http.post("/webhooks/shopify")).status_code for _ in range(3)]

    assert api == [200, 200, 200]
    assert hooks == [200, 200, 200]


def test_the_memory_backend_forgets_the_least_recently_seen_past_its_size() -> None:
    import asyncio

    backend = MemoryBackend(max_keys=2, clock=lambda: 1.0)

    async def run() -> None:
        for key in ("a", "b", "a", "c"):
            await backend.take(key, 1.0, 5)

    asyncio.run(run())

    assert list(backend.buckets) == ["a", "c"]


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix no other test uses; its keys are deleted afterwards."""
    prefix = f"stamp-test:{uuid.uuid4().hex}:"
    redis = Redis.from_url(REDIS_URL)
    try:
        await redis.ping()
    except Exception as exc:
        await redis.aclose()
        service_missing("Redis at " + REDIS_URL, exc)
    try:
        yield prefix
    finally:
        keys = [key async for key in redis.scan_iter(match=prefix + "*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


async def test_two_web_processes_share_one_bucket_through_redis(redis_prefix: str) -> None:
    first_backend = RedisBackend(REDIS_URL, redis_prefix)
    second_backend = RedisBackend(REDIS_URL, redis_prefix)
    web_1 = rate_limited_app(first_backend)
    web_2 = rate_limited_app(second_backend)
    try:
        async with http_for(web_1) as one, http_for(web_2) as two:
            statuses = [
                (await one.get(proxy_url("api/state"))).status_code,
                (await two.get(proxy_url("api/state"))).status_code,
                (await one.get(proxy_url("api/state"))).status_code,
            ]
            refused = await two.get(proxy_url("api/state"))
    finally:
        await first_backend.aclose()
        await second_backend.aclose()

    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    # rate 0.001/s: about 1000 s until a token is back (Redis's clock has moved a little).
    assert 990 <= int(refused.headers["retry-after"]) <= 1000


async def test_after_a_redis_failure_redis_is_left_alone_for_a_while() -> None:
    now = [100.0]
    backend = RedisBackend("redis://127.0.0.1:1/0", "stamp-test:", 5.0, clock=lambda: now[0])
    attempts: list[str] = []

    async def unavailable(keys: list[str], args: list[object]) -> list[int]:
        attempts.append(keys[0])
        raise ConnectionError("Redis is down")

    backend.script = unavailable  # type: ignore[assignment]
    try:
        first = await backend.take("k", 1.0, 5)
        now[0] = 104.9
        second = await backend.take("k", 1.0, 5)
        now[0] = 105.0
        third = await backend.take("k", 1.0, 5)
    finally:
        await backend.aclose()

    assert [first.allowed, second.allowed, third.allowed] == [True, True, True]
    assert attempts == ["stamp-test:k", "stamp-test:k"]


async def test_with_redis_down_the_limiter_falls_back_to_this_process() -> None:
    backend = RedisBackend("redis://127.0.0.1:1/0", "stamp-test:")
    application = rate_limited_app(backend, burst=1)
    try:
        async with http_for(application) as http:
            first = await http.get(proxy_url("api/state"))
            second = await http.get(proxy_url("api/state"))
    finally:
        await backend.aclose()

    assert [first.status_code, second.status_code] == [200, 429]


# --- rate limits: wired into the real app -----------------------------------------------------


@pytest.fixture
async def strict_client(database_url: str, state: State) -> AsyncIterator[httpx.AsyncClient]:
    """The real app with a storefront burst of 2 (the test's database and State)."""
    strict = make_settings(database_url, RATE_LIMIT_BURST=2, RATE_LIMIT_RATE=0.001)
    application = _with_state(create_app(strict), state)
    async with http_for(application) as http:
        yield http


async def test_the_real_app_limits_the_widget_and_a_refused_redeem_writes_nothing(
    strict_client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    from tests.proxy.test_routes import arrange

    await arrange(session, settings)
    statuses = [(await strict_client.get(proxy_url("api/state"))).status_code for _ in range(2)]
    before = await row_counts(session)

    refused = await strict_client.post(
        proxy_url("api/redeem"), json={"reward_id": "1", "request_id": "abcdefgh"}
    )

    assert statuses == [200, 200]
    assert refused.status_code == 429
    assert "retry-after" in refused.headers
    assert await row_counts(session) == before


async def test_a_content_length_that_is_not_a_number_is_refused_before_the_app() -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        raise AssertionError("the body must not be read")

    async def send(message: Message) -> None:
        sent.append(message)

    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/webhooks/shopify",
        "headers": [(b"content-length", "²".encode("latin-1"))],
        "query_string": b"",
    }
    await limited_app()(scope, receive, send)

    assert sent[0]["status"] == 400
    assert sent[1]["body"] == (
        b'{"error":{"code":"invalid_content_length","message":"Content-Length is not a number"}}'
    )


@given(st.binary(max_size=200))
def test_the_fast_query_reader_reads_every_query_as_starlette_does(raw: bytes) -> None:
    assert query_items(raw) == parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
