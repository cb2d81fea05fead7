"""Two web processes and two workers give exactly the single-process result.

Runs `scripts/scale.sh` twice against fresh PostgreSQL databases and our own redis-server
(never the machine's shared one): once with one web process and one worker, posting the
stream one delivery at a time; once with two web processes behind one port and two
workers, posting from eight concurrent senders. The stream has paid orders, partial
refunds (some before their order), exact re-deliveries and orders re-sent as new
deliveries. Every row that matters is compared, row by row.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench import cluster
from bench.stream import Delivery, SendReport, dump, ledger_drift, mixed_stream, send
from tests.conftest import service_missing
from tests.integrations.fake_klaviyo import KEY, FakeKlaviyo

ORDERS = 120


@dataclass
class Run:
    rows: dict[str, list[tuple[Any, ...]]]
    report: SendReport
    drift: list[str]
    processes: dict[str, int]
    klaviyo: dict[str, Any]


def klaviyo_view(snapshot: dict[str, Any]) -> dict[str, Any]:
    """What Klaviyo holds, without send times: profiles' Stamp figures, events by metric."""
    figures = ("Stamp Points Balance", "Stamp Pending Points", "Stamp Lifetime Points")
    return {
        "profiles": {
            email: tuple(props.get(name) for name in figures)
            for email, props in snapshot["profiles"].items()
        },
        "events": sorted((event["email"], event["metric"]) for event in snapshot["events"]),
        "duplicate_events": snapshot["duplicate_events"],
    }


def run_stream(
    redis: cluster.RedisServer,
    workdir: Path,
    stream: list[Delivery],
    *,
    web: int,
    workers: int,
    concurrency: int,
) -> Run:
    """A fresh database and fake Klaviyo; the stream; then the workers sync Klaviyo."""
    fake = FakeKlaviyo().start()
    try:
        with cluster.database() as url:
            env = cluster.stamp_env(
                url, redis.url, KLAVIYO_API_URL=fake.base_url, ALLOW_PRIVATE_URLS="true"
            )
            shop_id = cluster.prepare(env)
            with cluster.deployment(env, workdir, web=web, workers=workers) as running:
                processes = {"web": len(running.pids("web")), "worker": len(running.pids("worker"))}
                cluster.task(env, "klaviyo-connect", str(shop_id), KEY)
                report = asyncio.run(send(running.base_url, stream, concurrency=concurrency))
                # every worker picks up a sync of the same shop at once: the lease decides
                cluster.task(env, "klaviyo-sync", str(shop_id), str(2 * workers))
                cluster.settle_klaviyo(env, shop_id)
            rows = asyncio.run(dump(url))
            drift = asyncio.run(ledger_drift(url))
        return Run(rows, report, drift, processes, klaviyo_view(fake.snapshot()))
    finally:
        fake.stop()


def guests(run: Run) -> int:
    """Members without an email have no Klaviyo profile."""
    return sum(1 for member in run.rows["members"] if not member[1])


@pytest.fixture(scope="module")
def redis() -> Any:
    if shutil.which("redis-server") is None:
        service_missing("redis-server", FileNotFoundError("redis-server"))
    try:
        asyncio.run(cluster.admin(cluster.SHARED_POSTGRES, "SELECT 1"))
    except Exception as exc:
        service_missing("PostgreSQL at " + cluster.SHARED_POSTGRES, exc)
    with cluster.redis_server() as server:
        yield server


def test_two_web_processes_and_two_workers_match_one_of_each(
    redis: cluster.RedisServer, tmp_path: Path
) -> None:
    # given one stream of signed webhooks with refunds, re-sends and re-deliveries
    stream = mixed_stream(ORDERS, secret=cluster.SECRET, shop=cluster.SHOP_DOMAIN)
    distinct = len({delivery.headers["X-Shopify-Webhook-Id"] for delivery in stream})

    # when one web process and one worker take it one delivery at a time
    single = run_stream(redis, tmp_path, stream, web=1, workers=1, concurrency=1)
    # and two web processes behind one port and two workers take it from 8 senders
    scaled = run_stream(redis, tmp_path, stream, web=2, workers=2, concurrency=8)

    # then both deployments really ran as asked
    assert single.processes == {"web": 1, "worker": 1}
    assert scaled.processes == {"web": 2, "worker": 2}
    # and every delivery was answered: each distinct one processed once, the rest duplicates
    for run in (single, scaled):
        assert run.report.given_up == 0
        assert run.report.answers == {"processed": distinct, "duplicate": len(stream) - distinct}
    # and the ledger, members, orders and refunds are the same, row by row
    assert single.rows["ledger_entries"], "the stream earned points"
    for table in single.rows:
        assert scaled.rows[table] == single.rows[table], table
    assert len(single.rows["webhook_deliveries"]) == distinct
    assert single.rows["dead_letters"] == []
    assert single.drift == scaled.drift == []
    # and the workers sent Klaviyo the same profiles and events, none twice
    assert len(single.klaviyo["profiles"]) == len(single.rows["members"]) - guests(single)
    assert single.klaviyo["events"], "the sync sent events"
    assert scaled.klaviyo == single.klaviyo
    assert single.klaviyo["duplicate_events"] == 0
