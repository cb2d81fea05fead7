"""Request ids, request metrics and webhook lag, recorded by the pure ASGI middleware."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.base import utcnow
from app.observability.logs import JsonFormatter
from app.observability.metrics import REGISTRY
from app.settings import Settings
from tests.builders import create_shop, shopify_webhook

ORDER = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "shopify" / "orders_paid.json").read_text()
)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_request_without_an_id_gets_a_fresh_one(client: httpx.AsyncClient) -> None:
    # when a request arrives without X-Request-Id
    first = await client.get("/healthz")
    second = await client.get("/healthz")

    # then each answer carries its own new 32-hex id
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert [len(i) for i in ids] == [32, 32]
    assert all(int(i, 16) >= 0 for i in ids)
    assert ids[0] != ids[1]


async def test_a_plain_incoming_id_is_kept(client: httpx.AsyncClient) -> None:
    # when a proxy sends its own request id
    response = await client.get("/healthz", headers={"X-Request-Id": "edge-7f3a.1:abc"})

    # then it follows the request back out
    assert response.headers["x-request-id"] == "edge-7f3a.1:abc"


@pytest.mark.parametrize("hostile", ["a" * 129, "x\u00e9", "two words", "<script>"])
async def test_an_unsafe_incoming_id_is_replaced(client: httpx.AsyncClient, hostile: str) -> None:
    # when the id is too long or carries characters that do not belong in a log line
    response = await client.get("/healthz", headers={"X-Request-Id": hostile.encode()})

    # then a fresh id is used instead
    assert response.status_code == 200
    assert len(response.headers["x-request-id"]) == 32
    assert response.headers["x-request-id"] != hostile


async def test_requests_are_counted_by_route_template_and_status(
    client: httpx.AsyncClient,
) -> None:
    # given the counters as they stand
    ok = sample("stamp_http_requests_total", method="GET", route="/healthz", status="200")
    missing = sample("stamp_http_requests_total", method="GET", route="unmatched", status="404")
    timed = sample("stamp_http_request_duration_seconds_count", route="/healthz")

    # when two health checks and one unknown path are requested
    await client.get("/healthz")
    await client.get("/healthz")
    await client.get("/no/such/page/123")

    # then each is counted once under its template, never under the raw path
    assert sample("stamp_http_requests_total", method="GET", route="/healthz", status="200") == (
        ok + 2
    )
    assert sample("stamp_http_requests_total", method="GET", route="unmatched", status="404") == (
        missing + 1
    )
    assert sample("stamp_http_request_duration_seconds_count", route="/healthz") == timed + 2


async def test_webhook_lag_is_observed_for_accepted_deliveries_only(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given an installed shop and an order Shopify triggered two minutes ago (a retry)
    await create_shop(session, settings)
    body, headers = shopify_webhook(settings, "orders/paid", ORDER)
    headers["X-Shopify-Triggered-At"] = (utcnow() - timedelta(seconds=120)).isoformat()
    under_a_minute = sample("stamp_webhook_lag_seconds_bucket", source="shopify", le="60.0")
    under_five = sample("stamp_webhook_lag_seconds_bucket", source="shopify", le="300.0")
    count = sample("stamp_webhook_lag_seconds_count", source="shopify")

    # when it arrives, and a forged copy with a bad signature arrives too
    accepted = await client.post("/webhooks/shopify", content=body, headers=headers)
    forged = await client.post(
        "/webhooks/shopify", content=body, headers=headers | {"X-Shopify-Hmac-Sha256": "AAAA"}
    )

    # then only the accepted delivery's lag is recorded, in the 1-5 minute bucket
    assert (accepted.status_code, forged.status_code) == (200, 401)
    assert sample("stamp_webhook_lag_seconds_count", source="shopify") == count + 1
    assert sample("stamp_webhook_lag_seconds_bucket", source="shopify", le="60.0") == (
        under_a_minute
    )
    assert sample("stamp_webhook_lag_seconds_bucket", source="shopify", le="300.0") == (
        under_five + 1
    )


async def test_the_access_line_is_json_with_route_status_and_request_id(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    # when a request is answered
    with caplog.at_level(logging.INFO, logger="stamp.access"):
        await client.get("/healthz", headers={"X-Request-Id": "req-42"})

    # then one access line says what was asked, which route answered and with what
    records = [r for r in caplog.records if r.name == "stamp.access"]
    assert len(records) == 1
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["duration_ms"] >= 0
    del line["ts"], line["duration_ms"]
    assert line == {
        "level": "info",
        "logger": "stamp.access",
        "message": "GET /healthz 200",
        "method": "GET",
        "path": "/healthz",
        "route": "/healthz",
        "status": 200,
        "request_id": "req-42",
    }
