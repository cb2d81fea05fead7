"""Smoke test of the intake benchmark's pieces (no server, no wrk, no timing)."""

from __future__ import annotations

from pathlib import Path

import orjson

from app.events import OrderPaid
from app.integrations.shopify.signing import verify_webhook
from bench import cpu
from bench.intake import parse_wrk
from bench.payloads import signed_orders, write_manifest
from webhooks.shopify.normalise import order_event

SECRET = "bench-smoke-secret"
SHOP = "bench-smoke.myshopify.com"

WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:8000/webhooks/shopify
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   120.50ms   30.10ms 800.00ms   90.00%
  Latency Distribution
     50%  110.25ms
     75%  130.00ms
     90%  160.00ms
     99%    1.20s
  5000 requests in 10.00s, 1.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 3
Requests/sec:    500.00
Transfer/sec:    100.00KB
BENCH_JSON {"requests":5000,"duration_us":10000000,"processed":4997,"sent":5000}
"""


def test_orders_are_distinct_signed_and_earn() -> None:
    requests = signed_orders(60, secret=SECRET, shop_domain=SHOP, seed=7)
    assert len({request.order_id for request in requests}) == 60
    assert len({request.headers["X-Shopify-Webhook-Id"] for request in requests}) == 60
    assert len({request.buyer_key for request in requests}) < 60  # some repeat buyers
    for request in requests:
        assert verify_webhook(SECRET, request.body, request.headers["X-Shopify-Hmac-Sha256"])
        event = order_event("orders/paid", orjson.loads(request.body))
        assert isinstance(event, OrderPaid)
        assert event.order_id == str(request.order_id)
        assert event.merchandise >= 1  # every order earns at least one point


def test_manifest_lists_every_body(tmp_path: Path) -> None:
    requests = signed_orders(5, secret=SECRET, shop_domain=SHOP)
    manifest = write_manifest(requests, tmp_path, "orders.tsv")
    lines = manifest.read_text().splitlines()
    assert len(lines) == 5
    body_file, *headers = lines[0].split("\t")
    assert (tmp_path / body_file).read_bytes() == requests[0].body
    assert "X-Shopify-Topic: orders/paid" in headers


def test_parse_wrk_reads_the_figures() -> None:
    parsed = parse_wrk(WRK_OUTPUT)
    assert parsed["requests_per_s"] == 500.0
    assert parsed["p50_ms"] == 110.25
    assert parsed["p99_ms"] == 1200.0
    assert parsed["non_2xx"] == 3
    assert parsed["socket_errors"] == {"connect": 0, "read": 2, "write": 0, "timeout": 1}
    assert parsed["counters"]["processed"] == 4997


def test_cpu_usage_is_split_by_role() -> None:
    before = cpu.snapshot()
    after = cpu.snapshot()
    if before is None or after is None:
        return  # not Linux
    usage = cpu.usage(before, after, 1.0, {"server": -1})
    assert usage is not None
    assert usage.other >= 0
    assert usage.cpu_ms_per("server", 10) == 0.0
