"""GET /metrics: Prometheus text with request counters and the scrape-time gauges."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession

from app.main import create_app
from app.models import DeadLetter
from app.observability import service
from app.settings import Settings
from app.state import State
from tests.builders import create_shop, row_counts
from tests.conftest import _with_state, make_settings


@pytest.fixture(autouse=True)
def fresh_figures() -> Iterator[None]:
    service.reset_cache()
    yield
    service.reset_cache()


def gauges(text: str) -> dict[str, float]:
    """Every sample of the scrape as `name{label=value}` → value."""
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for name, labels, value, *_ in family.samples:
            pairs = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
            key = f"{name}{{{pairs}}}" if pairs else name
            samples[key] = value
    return samples


async def test_metrics_show_queue_depth_dead_letters_and_sync_backlog(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, queue: object
) -> None:
    # given one open dead letter and an empty queue
    shop = await create_shop(session, settings)
    session.add(
        DeadLetter(
            shop_id=shop.id,
            source="shopify",
            topic="orders/paid",
            delivery_id="d-1",
            headers={},
            body=b"{}",
            error="KeyError: 'id'",
        )
    )
    await session.commit()

    # when an operator scrapes
    response = await client.get("/metrics")

    # then the figures are there in the Prometheus text format
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples = gauges(response.text)
    assert samples["stamp_queue_up"] == 1.0
    assert samples["stamp_queue_depth"] == 0.0
    assert samples["stamp_database_up"] == 1.0
    assert samples["stamp_dead_letters_open"] == 1.0
    assert samples["stamp_dead_letter_oldest_age_seconds"] >= 0.0
    assert samples["stamp_sync_backlog{kind=klaviyo_profiles}"] == 0.0
    assert samples["stamp_sync_backlog{kind=klaviyo_events}"] == 0.0


async def test_queued_jobs_show_as_queue_depth(client: httpx.AsyncClient, queue: object) -> None:
    # given two jobs waiting for a worker
    from app.maintenance.tasks import purge_webhook_bodies

    purge_webhook_bodies()
    purge_webhook_bodies()

    # when an operator scrapes
    samples = gauges((await client.get("/metrics")).text)

    # then the depth is exactly two
    assert samples["stamp_queue_depth"] == 2.0


async def test_the_request_counter_is_in_the_scrape(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")

    samples = gauges((await client.get("/metrics")).text)

    assert samples["stamp_http_requests_total{method=GET,route=/healthz,status=200}"] >= 1.0


async def metrics_client(state: State, **overrides: object) -> httpx.AsyncClient:
    app = create_app(make_settings(state.settings.DATABASE_URL, **overrides))
    transport = httpx.ASGITransport(app=_with_state(app, state))
    return httpx.AsyncClient(transport=transport, base_url="https://stamp.test")


async def test_with_a_token_metrics_need_it(state: State, session: AsyncSession) -> None:
    # given METRICS_TOKEN is set
    state.settings = make_settings(state.settings.DATABASE_URL, METRICS_TOKEN="scrape-me")
    before = await row_counts(session)
    async with await metrics_client(state, METRICS_TOKEN="scrape-me") as http:
        # when a scraper comes without it, with a wrong one, and with the right one
        missing = await http.get("/metrics")
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        right = await http.get("/metrics", headers={"Authorization": "Bearer scrape-me"})

    # then only the right one is answered, and the refusals change nothing
    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert missing.json() == {
        "error": {"code": "unauthorized", "message": "Send Authorization: Bearer METRICS_TOKEN."}
    }
    assert "stamp_queue_depth" in right.text
    assert await row_counts(session) == before


async def test_production_without_a_token_serves_no_metrics(
    state: State, session: AsyncSession
) -> None:
    # given production settings with every secret but no METRICS_TOKEN
    production = {
        "STAMP_ENV": "production",
        "SECRET_KEY": "s" * 40,
        "ENCRYPTION_KEYS": "kDqBPS0Plf8xvVIjQ0QpXCSZ3rAL9C1vTKeDcjBfyRU=",
    }
    state.settings = make_settings(state.settings.DATABASE_URL, **production)
    before = await row_counts(session)
    async with await metrics_client(state, **production) as http:
        # when anyone asks for /metrics
        response = await http.get("/metrics")

    # then there is nothing there
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "not_found", "message": "Set METRICS_TOKEN to serve /metrics."}
    }
    assert await row_counts(session) == before
