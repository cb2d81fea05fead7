"""Soak: mixed load on the multi-process deployment, then the books must balance.

    python -m bench.soak [--seconds 600] [--concurrency 8] [--web 2] [--workers 2]
                         [--json out.json]

Starts `scripts/scale.sh` (2 web processes behind one port, 2 workers) on a fresh
PostgreSQL database, our own redis-server and a local fake Shopify Admin API
(`bench.fake_shopify`, a separate process), then for `--seconds` runs virtual users that
each pick, at random: a new paid order (40%), a re-delivery of one already sent (10%), a
partial refund (10%; a third of them before their order), a widget read through the
signed app proxy (22%), a redemption through the API (10%; most members cannot afford
one and get a 4xx) and a Judge.me review webhook (8%). Webhooks that get a 5xx are
retried like Shopify retries them.

Pass when: `stamp ledger verify` is clean afterwards, no request got a 5xx (nothing is
injected in the soak: bench.faults does that), every webhook was finally accepted, and
the RSS of each process is printed at start and end (growth is reported, and judged
unbounded when a process grew by more than `--rss-growth` percent after the warm-up).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson

from bench import cluster
from bench.payloads import signed_orders
from bench.stream import refund_payload, signed

JUDGEME_TOKEN = "jm_soak_private_token_0123456789"
MIX = (
    ("order", 40),
    ("redeliver", 10),
    ("refund", 10),
    ("widget", 22),
    ("redeem", 10),
    ("review", 8),
)


@dataclass
class Known:
    """What the load has sent so far, to pick re-deliveries, refunds and shoppers from."""

    sent: deque[tuple[dict[str, Any], bytes, dict[str, str]]] = field(
        default_factory=lambda: deque(maxlen=2000)
    )
    refunds: Counter[int] = field(default_factory=Counter)
    customers: deque[tuple[str, str]] = field(default_factory=lambda: deque(maxlen=2000))


class Orders:
    """Fresh signed orders, made 400 at a time in a thread so the clock is not stopped."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.batch = 0
        self.ready: deque[tuple[dict[str, Any], bytes, dict[str, str]]] = deque()

    def _make(self) -> list[tuple[dict[str, Any], bytes, dict[str, str]]]:
        self.batch += 1
        made = signed_orders(
            400, secret=cluster.SECRET, shop_domain=cluster.SHOP_DOMAIN,
            seed=self.seed * 1000 + self.batch,
            first_sequence=self.seed * 100_000_000 + self.batch * 1_000_000,
            new_buyer_share=0.4, target_bytes=1024,
        )  # fmt: skip
        return [(orjson.loads(r.body), r.body, r.headers) for r in made]

    async def next(self) -> tuple[dict[str, Any], bytes, dict[str, str]]:
        if len(self.ready) < 50:
            self.ready.extend(await asyncio.to_thread(self._make))
        return self.ready.popleft()

    def upcoming(self) -> dict[str, Any] | None:
        return self.ready[-1][0] if self.ready else None


@dataclass
class Tally:
    statuses: Counter[str] = field(default_factory=Counter)  # "action status"
    latencies: dict[str, list[float]] = field(default_factory=dict)
    server_errors: int = 0
    retried: int = 0
    given_up: int = 0

    def record(self, action: str, status: str, seconds: float) -> None:
        self.statuses[f"{action} {status}"] += 1
        self.latencies.setdefault(action, []).append(seconds)
        if status.startswith("5") or not status[0].isdigit():
            self.server_errors += 1


def proxy_url(customer_id: str) -> str:
    from app.integrations.shopify.signing import app_proxy_signature

    params = [
        ("shop", cluster.SHOP_DOMAIN),
        ("logged_in_customer_id", customer_id),
        ("path_prefix", "/apps/stamp"),
        ("timestamp", str(int(time.time()))),
    ]
    params.append(("signature", app_proxy_signature(cluster.SECRET, params)))
    return "/proxy/api/state?" + urlencode(params)


def review_delivery(review_id: int, email: str) -> tuple[bytes, dict[str, str]]:
    review = {
        "id": review_id, "title": "Great", "body": "Lovely, keeps my tea hot for ages.",
        "rating": 5, "product_external_id": "8002", "product_title": "Mug",
        "product_handle": "mug", "reviewer": {"id": review_id, "email": email, "name": "A"},
        "source": "web", "curated": "ok", "published": True, "hidden": False,
        "verified": "buyer", "featured": False, "has_published_pictures": False,
        "has_published_videos": False, "pictures": [],
        "created_at": "2026-09-20T09:00:00.000Z", "updated_at": "2026-09-20T10:00:00.000Z",
    }  # fmt: skip
    body = orjson.dumps(
        {"review": review, "event": "review/created", "shop_domain": cluster.SHOP_DOMAIN,
         "platform": "shopify"}
    )  # fmt: skip
    digest = hmac.new(JUDGEME_TOKEN.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "JUDGEME-HMAC-SHA256": digest}


async def run_load(
    base_url: str, api_key: str, seconds: float, concurrency: int, seed: int = 3
) -> Tally:
    import httpx

    tally = Tally()
    known = Known()
    orders = Orders(seed)
    rng = random.Random(seed)
    actions = [name for name, weight in MIX for _ in range(weight)]
    deadline = time.monotonic() + seconds
    review_ids = iter(range(10_000_000, 20_000_000))

    async def webhook(
        client: httpx.AsyncClient, action: str, path: str, body: bytes, headers: dict[str, str]
    ) -> None:
        headers = headers | {"X-Shopify-Triggered-At": datetime.now(UTC).isoformat()}
        for attempt in range(30):
            started = time.perf_counter()
            try:
                response = await client.post(base_url + path, content=body, headers=headers)
                status = str(response.status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            tally.record(action, status, time.perf_counter() - started)
            if status.isdigit() and int(status) < 500 and status != "429":
                return
            tally.retried += 1
            await asyncio.sleep(min(0.25 * 2**attempt, 5.0))
        tally.given_up += 1

    async def request(client: httpx.AsyncClient, action: str, method: str, url: str,
                      **kwargs: Any) -> None:  # fmt: skip
        started = time.perf_counter()
        try:
            response = await client.request(method, base_url + url, **kwargs)
            status = str(response.status_code)
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        tally.record(action, status, time.perf_counter() - started)

    async def user(client: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            action = rng.choice(actions)
            if action != "order" and not known.sent:
                action = "order"
            if action == "order":
                order, body, headers = await orders.next()
                await webhook(client, action, "/webhooks/shopify", body, headers)
                known.sent.append((order, body, headers))
                customer = order.get("customer") or {}
                if customer.get("id") and customer.get("email"):
                    known.customers.append((str(customer["id"]), str(customer["email"])))
            elif action == "redeliver":
                _, body, headers = rng.choice(known.sent)
                await webhook(client, action, "/webhooks/shopify", body, headers)
            elif action == "refund":
                early = orders.upcoming() if rng.random() < 1 / 3 else None
                order = early or rng.choice(known.sent)[0]
                if known.refunds[order["id"]] >= 2:
                    continue
                part = known.refunds[order["id"]]
                known.refunds[order["id"]] += 1
                refund = refund_payload(order, order["id"] * 10 + part, Decimal("0.5"))
                body, headers = signed(
                    "refunds/create", refund, cluster.SECRET, cluster.SHOP_DOMAIN,
                    str(uuid.uuid4()),
                )  # fmt: skip
                await webhook(client, action, "/webhooks/shopify", body, headers)
            elif action == "widget":
                customer_id = rng.choice(known.customers)[0] if known.customers else ""
                await request(client, action, "GET", proxy_url(customer_id))
            elif action == "redeem" and known.customers:
                payload = {
                    "customer_id": rng.choice(known.customers)[0],
                    "reward_id": "amount-off",
                    "idempotency_key": uuid.uuid4().hex,
                }
                await request(client, action, "POST", "/api/v1/redemptions", json=payload,
                              headers={"Authorization": f"Bearer {api_key}"})  # fmt: skip
            elif action == "review" and known.customers:
                body, headers = review_delivery(next(review_ids), rng.choice(known.customers)[1])
                await webhook(client, action, "/webhooks/judgeme", body, headers)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:
        await asyncio.gather(*(user(client) for _ in range(concurrency)))
    return tally


@contextmanager
def fake_shopify(workdir: Path) -> Iterator[str]:
    """`bench.fake_shopify` in its own process; yields its base URL."""
    port = cluster.free_port()
    log = (workdir / "fake-shopify.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.fake_shopify", "--port", str(port)], cwd=cluster.ROOT,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://{cluster.HOST}:{port}"
    try:
        import urllib.request

        cluster.wait_for(
            lambda: urllib.request.urlopen(base + "/_fake/state", timeout=1).status == 200,
            "fake Shopify",
        )
        yield base
    finally:
        cluster.stop_group(process, grace=5)
        log.close()


@dataclass
class SoakResult:
    seconds: float
    requests: int
    statuses: dict[str, int]
    latency_p50_ms: dict[str, float]
    latency_p99_ms: dict[str, float]
    server_errors: int
    webhooks_given_up: int
    rss_start_kb: dict[str, int]
    rss_end_kb: dict[str, int]
    rss_growth_pct: dict[str, float]
    ledger_verify: str
    ledger_clean: bool
    shopify: dict[str, Any]
    metrics: dict[str, float]
    passed: bool


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def scrape(base_url: str) -> dict[str, float]:
    """The scrape-time gauges of /metrics, as an operator would read them."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(base_url + "/metrics", timeout=10) as answer:
        text = answer.read().decode()
    figures: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith(("stamp_queue", "stamp_dead_letters", "stamp_database_up")):
                figures[sample.name] = sample.value
            elif sample.name == "stamp_http_requests_total":
                figures["http_requests_total"] = (
                    figures.get("http_requests_total", 0) + sample.value
                )
    return figures


def soak(
    seconds: float, concurrency: int, web: int, workers: int, rss_growth: float = 50.0,
    warmup: float = 10.0,
) -> SoakResult:  # fmt: skip
    import urllib.request

    with (
        tempfile.TemporaryDirectory(prefix="stamp-soak-") as tmp,
        cluster.redis_server() as redis,
        cluster.database() as url,
        fake_shopify(Path(tmp)) as shopify,
    ):
        env = cluster.stamp_env(url, redis.url, SHOPIFY_ADMIN_URL=shopify + "/{shop}")
        shop_id = cluster.prepare(env)
        api_key = cluster.task(env, "soak-setup", str(shop_id), JUDGEME_TOKEN)["api_key"]
        with cluster.deployment(env, Path(tmp), web=web, workers=workers) as running:
            print(f"deployment: web {running.pids('web')}, workers {running.pids('worker')}, "
                  f"{running.base_url}", flush=True)  # fmt: skip
            asyncio.run(run_load(running.base_url, api_key, min(warmup, seconds), concurrency, 1))
            rss_start = running.rss()
            print(f"RSS at start (after {warmup:.0f} s warm-up), kB: {rss_start}", flush=True)
            started = time.monotonic()
            tally = asyncio.run(run_load(running.base_url, api_key, seconds, concurrency))
            elapsed = time.monotonic() - started
            rss_end = running.rss()
            print(f"RSS at end, kB: {rss_end}", flush=True)
            metrics = scrape(running.base_url)
            with urllib.request.urlopen(shopify + "/_fake/state", timeout=5) as answer:
                shopify_state = json.loads(answer.read())
        verify = subprocess.run(
            [sys.executable, "-m", "app.cli", "ledger", "verify"], env=env, cwd=cluster.ROOT,
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    growth = {
        key: round(100.0 * (rss_end.get(key, 0) - start) / start, 1)
        for key, start in rss_start.items()
        if start
    }
    result = SoakResult(
        seconds=elapsed,
        requests=sum(tally.statuses.values()),
        statuses=dict(sorted(tally.statuses.items())),
        latency_p50_ms={k: round(_percentile(v, 0.5), 1) for k, v in tally.latencies.items()},
        latency_p99_ms={k: round(_percentile(v, 0.99), 1) for k, v in tally.latencies.items()},
        server_errors=tally.server_errors,
        webhooks_given_up=tally.given_up,
        rss_start_kb=rss_start,
        rss_end_kb=rss_end,
        rss_growth_pct=growth,
        ledger_verify=(verify.stdout + verify.stderr).strip(),
        ledger_clean=verify.returncode == 0,
        shopify=shopify_state,
        metrics=metrics,
        passed=False,
    )
    result.passed = (
        result.ledger_clean
        and result.server_errors == 0
        and result.webhooks_given_up == 0
        and set(rss_end) == set(rss_start)
        and all(value <= rss_growth for value in growth.values())
    )
    return result


def report(result: SoakResult, rss_growth: float) -> list[str]:
    lines = [f"Soak: {result.seconds:.0f} s, {result.requests:,} requests "
             f"({result.requests / max(result.seconds, 1):.1f}/s)"]  # fmt: skip
    lines.append("answers (action status: count):")
    lines += [f"  {key:<28} {count:>7,}" for key, count in result.statuses.items()]
    lines.append("latency p50 / p99 ms by action:")
    lines += [
        f"  {key:<10} {result.latency_p50_ms[key]:>8.1f} / {result.latency_p99_ms[key]:>8.1f}"
        for key in sorted(result.latency_p50_ms)
    ]
    lines.append("RSS kB, start -> end (growth):")
    for key, start in result.rss_start_kb.items():
        end = result.rss_end_kb.get(key, 0)
        lines.append(
            f"  {key:<14} {start:>8,} -> {end:>8,} ({result.rss_growth_pct.get(key, 0):+.1f}%)"
        )
    lines.append(
        f"fake Shopify: {result.shopify['codes']} codes, answers {result.shopify['outcomes']}"
    )
    lines.append(f"/metrics at the end: {result.metrics}")
    lines.append(f"stamp ledger verify: {result.ledger_verify}")
    lines.append(
        f"verdicts: ledger {'clean' if result.ledger_clean else 'DRIFTED'}; "
        f"5xx or no answer: {result.server_errors} (none injected); webhooks given up: "
        f"{result.webhooks_given_up}; RSS growth <= {rss_growth:.0f}%: "
        f"{all(v <= rss_growth for v in result.rss_growth_pct.values())}"
    )
    lines.append(f"SOAK {'PASSED' if result.passed else 'FAILED'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--web", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rss-growth", type=float, default=50.0, help="percent allowed")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    result = soak(args.seconds, args.concurrency, args.web, args.workers, args.rss_growth)
    for line in report(result, args.rss_growth):
        print(line)
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2))
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
