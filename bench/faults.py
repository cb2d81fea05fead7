"""Fault injection on the multi-process deployment, each scenario with a printed verdict.

    python -m bench.faults [--only postgres-restart,worker-kill,redis-down,shopify-faults]

Every scenario starts its OWN throwaway infrastructure (`bench.cluster`): a PostgreSQL
cluster initdb'ed into a temporary directory when the database itself is the fault, a
redis-server on a free port, fake Shopify Admin and Klaviyo servers. The machine's shared
PostgreSQL (5432) and Redis (6379) are never stopped or restarted.

- postgres-restart: webhooks from 8 senders while PostgreSQL is stopped (fast: every
  connection cut) and started again; Stamp answers 503 meanwhile and the Shopify-style
  retries then succeed. Verdict: every delivery accepted, one row per delivery, one earn
  entry per order, no drift, no dead letter.
- worker-kill: a Klaviyo first sync (bulk import jobs against the fake Klaviyo with its
  documented rate limits) is running when every worker process is SIGKILLed; scale.sh
  restarts them; once the dead run's lease expires (5 minutes) the sweep resumes.
  Verdict: every profile reaches Klaviyo with its balance, every event once.
- redis-down: Redis is stopped for `--redis-seconds` (60) while webhooks keep coming.
  Verdict: no webhook got a 5xx, /metrics shows the queue down, and after Redis is back
  the workers catch up (the Klaviyo backlog written during the outage is sent).
- shopify-faults: redemptions while the fake Shopify Admin answers 429 (15%), 500 (15%),
  times out (5%) or applies the mutation and loses the answer (10%). Verdict: no
  redemption left pending, each issued one has its code at Shopify, each failed one gave
  its points back, no 500 from Stamp, no drift.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import cluster
from bench.soak import JUDGEME_TOKEN, fake_shopify, scrape
from bench.stream import SendReport, mixed_stream, send


@dataclass
class Verdict:
    scenario: str
    checks: list[tuple[str, bool]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def check(self, what: str, ok: bool) -> None:
        self.checks.append((what, ok))
        print(f"  [{'ok' if ok else 'FAIL'}] {what}", flush=True)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  {text}", flush=True)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(ok for _, ok in self.checks)


def _books_checks(verdict: Verdict, books: dict[str, Any], distinct: int, orders: int) -> None:
    verdict.check(f"one delivery row per distinct delivery ({books['deliveries']} = {distinct})",
                  books["deliveries"] == distinct)  # fmt: skip
    verdict.check(f"one earn entry per order ({books['earn_entries']} = {orders})",
                  books["earn_entries"] == orders)  # fmt: skip
    verdict.check("no dead letters", books["dead_letters"] == 0)
    verdict.check("stamp ledger verify: no drift", books["drift"] == [])


def _orders_in(stream: list[Any]) -> int:
    return len({json.loads(d.body)["id"] for d in stream if d.topic == "orders/paid"})


def postgres_restart(workdir: Path, orders: int = 200, down: float = 5.0) -> Verdict:
    verdict = Verdict("postgres-restart")
    stream = mixed_stream(orders, secret=cluster.SECRET, shop=cluster.SHOP_DOMAIN, seed=21)
    distinct = len({d.headers["X-Shopify-Webhook-Id"] for d in stream})
    with (
        cluster.postgres_cluster() as pg,
        cluster.redis_server() as redis,
        cluster.database(pg.server_url) as url,
    ):
        env = cluster.stamp_env(url, redis.url)
        shop_id = cluster.prepare(env)
        with cluster.deployment(env, workdir, web=2, workers=2) as running:

            async def load_with_restart() -> Any:
                progress = SendReport()
                sending = asyncio.create_task(
                    send(running.base_url, stream, concurrency=8, by_lane=False, report=progress)
                )
                # Mid-load whatever the machine's speed: a quarter of the stream is sent.
                for _ in range(6000):  # polls for at most 5 minutes
                    if progress.attempts >= len(stream) // 4 or sending.done():
                        break
                    await asyncio.sleep(0.05)
                verdict.note(f"stopping PostgreSQL for {down:.0f} s mid-load")
                await asyncio.to_thread(pg.restart, down)
                verdict.note("PostgreSQL is back")
                return await sending

            report = asyncio.run(load_with_restart())
            verdict.note(f"answers {dict(report.answers)}; failed tries {dict(report.failures)}")
            verdict.check(
                "the outage was seen (some tries failed)", sum(report.failures.values()) > 0
            )
            verdict.check(
                "no failed try was anything but 503 or a refused/cut connection",
                set(report.failures) <= {"503", "ConnectError", "ReadError", "RemoteProtocolError"},
            )
            verdict.check(
                "every delivery finally accepted (Shopify's retries)", report.given_up == 0
            )
            verdict.check(
                "every answer processed or duplicate",
                sum(report.answers.values()) == len(stream)
                and set(report.answers) <= {"processed", "duplicate"},
            )
        _books_checks(
            verdict, cluster.task(env, "books", str(shop_id)), distinct, _orders_in(stream)
        )
    return verdict


def _klaviyo_env(url: str, redis_url: str, fake_url: str) -> dict[str, str]:
    return cluster.stamp_env(url, redis_url, KLAVIYO_API_URL=fake_url, ALLOW_PRIVATE_URLS="true")


def _klaviyo_checks(verdict: Verdict, snapshot: dict[str, Any], members: int) -> None:
    verdict.check(f"every member with an email has a Klaviyo profile ({len(snapshot['profiles'])})",
                  len(snapshot["profiles"]) == members)  # fmt: skip
    verdict.note(f"events in Klaviyo: {len(snapshot['events'])}; re-sent duplicates Klaviyo "
                 f"dropped by unique_id: {snapshot['duplicate_events']}")  # fmt: skip


def _members_with_email(env: dict[str, str]) -> int:
    output = cluster.python(
        env, "-c",
        "import asyncio; from bench.stream import dump; import os; "
        "rows = asyncio.run(dump(os.environ['DATABASE_URL']))['members']; "
        "print(sum(1 for r in rows if r[1]))",
    )  # fmt: skip
    return int(output.strip().splitlines()[-1])


BULK_JOBS = "POST /api/profile-bulk-import-jobs"


def worker_kill(workdir: Path, orders: int = 300, settle: float = 480.0) -> Verdict:
    from tests.integrations.fake_klaviyo import KEY, FakeKlaviyo

    verdict = Verdict("worker-kill")
    stream = mixed_stream(orders, secret=cluster.SECRET, shop=cluster.SHOP_DOMAIN, seed=31)
    fake = FakeKlaviyo(job_seconds=15.0).start()
    try:
        with cluster.redis_server() as redis, cluster.database() as url:
            env = _klaviyo_env(url, redis.url, fake.base_url)
            shop_id = cluster.prepare(env)
            with cluster.deployment(env, workdir, web=2, workers=2) as running:
                asyncio.run(send(running.base_url, stream, concurrency=8))
                members = _members_with_email(env)
                cluster.task(env, "klaviyo-connect", str(shop_id), KEY)
                # Mid-job: a bulk import job was created and the run is waiting for it.
                deadline = time.monotonic() + 120
                while not fake.snapshot()["requests"].get(BULK_JOBS):
                    if time.monotonic() > deadline:
                        raise RuntimeError("no worker started a Klaviyo import within 120 s")
                    time.sleep(0.1)
                time.sleep(0.5)
                victims = running.pids("worker")
                for pid in victims:
                    os.kill(pid, signal.SIGKILL)
                verdict.note(f"SIGKILLed workers {victims} mid-sync")
                cluster.wait_for(
                    lambda: len(set(running.pids("worker")) - set(victims)) == 2,
                    "restarted workers", timeout=60,
                )  # fmt: skip
                verdict.check("scale.sh restarted both workers", True)
                started = time.monotonic()
                cluster.settle_klaviyo(env, shop_id, timeout=settle)
                verdict.note(
                    f"backlog drained {time.monotonic() - started:.0f} s after the kill "
                    "(the dead run's lease lasts 300 s, then the minute sweep resumes)"
                )
            _klaviyo_checks(verdict, fake.snapshot(), members)
            books = cluster.task(env, "books", str(shop_id))
            verdict.check("stamp ledger verify: no drift", books["drift"] == [])
    finally:
        fake.stop()
    return verdict


def redis_down(workdir: Path, orders: int = 200, down: float = 60.0) -> Verdict:
    from tests.integrations.fake_klaviyo import KEY, FakeKlaviyo

    verdict = Verdict("redis-down")
    stream = mixed_stream(orders, secret=cluster.SECRET, shop=cluster.SHOP_DOMAIN, seed=41)
    half = len(stream) // 2
    fake = FakeKlaviyo().start()
    try:
        with cluster.redis_server() as redis, cluster.database() as url:
            env = _klaviyo_env(url, redis.url, fake.base_url)
            shop_id = cluster.prepare(env)
            with cluster.deployment(env, workdir, web=2, workers=2) as running:
                cluster.task(env, "klaviyo-connect", str(shop_id), KEY)
                first = asyncio.run(send(running.base_url, stream[:half], concurrency=8))
                redis.stop()
                verdict.note(f"Redis stopped for {down:.0f} s")
                started = time.monotonic()
                second = asyncio.run(
                    send(running.base_url, stream[half:], concurrency=8, max_attempts=1)
                )
                verdict.check(
                    f"webhooks answered without Redis: {dict(second.answers)}, "
                    f"failures {dict(second.failures)}",
                    second.given_up == 0 and not second.failures,
                )
                metrics = scrape(running.base_url)
                verdict.check("/metrics reports the queue down (stamp_queue_up 0)",
                              metrics.get("stamp_queue_up") == 0.0)  # fmt: skip
                try:
                    urllib.request.urlopen(running.base_url + "/readyz", timeout=10)
                    ready = True
                except urllib.error.HTTPError as exc:
                    ready = exc.code != 503
                verdict.check("/readyz answers 503 while the queue is down", not ready)
                time.sleep(max(0.0, down - (time.monotonic() - started)))
                redis.start()
                verdict.note("Redis is back (empty: jobs waiting in it were lost)")
                members = _members_with_email(env)
                started = time.monotonic()
                cluster.settle_klaviyo(env, shop_id, timeout=240)
                verdict.note(
                    f"workers caught up {time.monotonic() - started:.0f} s after Redis "
                    "returned (the minute sweep re-finds the backlog in PostgreSQL)"
                )
                verdict.check("first half accepted before the outage", first.given_up == 0)
            _klaviyo_checks(verdict, fake.snapshot(), members)
            books = cluster.task(env, "books", str(shop_id))
            distinct = len({d.headers["X-Shopify-Webhook-Id"] for d in stream})
            _books_checks(verdict, books, distinct, _orders_in(stream))
    finally:
        fake.stop()
    return verdict


def shopify_faults(workdir: Path, orders: int = 200, redemptions: int = 80) -> Verdict:
    import httpx

    verdict = Verdict("shopify-faults")
    stream = mixed_stream(orders, secret=cluster.SECRET, shop=cluster.SHOP_DOMAIN, seed=51,
                          refunds=0.0)  # fmt: skip
    customers = sorted(
        {str(json.loads(d.body)["customer"]["id"]) for d in stream
         if d.topic == "orders/paid" and json.loads(d.body).get("customer")}
    )  # fmt: skip
    with (
        cluster.redis_server() as redis,
        cluster.database() as url,
        fake_shopify(workdir) as shopify,
    ):
        env = cluster.stamp_env(
            url, redis.url, SHOPIFY_ADMIN_URL=shopify + "/{shop}", HTTP_TIMEOUT_SECONDS="2"
        )
        shop_id = cluster.prepare(env)
        api_key = cluster.task(env, "soak-setup", str(shop_id), JUDGEME_TOKEN)["api_key"]
        faults = {"429": 0.15, "500": 0.15, "timeout": 0.05, "lost": 0.10, "timeout_seconds": 4}
        with cluster.deployment(env, workdir, web=2, workers=2) as running:
            asyncio.run(send(running.base_url, stream, concurrency=8))
            urllib.request.urlopen(
                urllib.request.Request(shopify + "/_fake/faults", json.dumps(faults).encode()),
                timeout=5,
            )
            verdict.note(f"fake Shopify faults: {faults}")
            rng = random.Random(5)

            async def redeem_all() -> Counter[str]:
                answers: Counter[str] = Counter()
                semaphore = asyncio.Semaphore(6)
                auth = {"Authorization": f"Bearer {api_key}"}

                async def grant(client: httpx.AsyncClient, customer: str) -> None:
                    """Enough points for a few redemptions each, so most reach Shopify."""
                    response = await client.post(
                        f"{running.base_url}/api/v1/members/{customer}/adjustments",
                        json={
                            "points": 2000,
                            "reason": "fault scenario",
                            "idempotency_key": f"grant-{customer}",
                        },  # fmt: skip
                        headers=auth,
                    )
                    response.raise_for_status()

                async def one(client: httpx.AsyncClient) -> None:
                    async with semaphore:
                        response = await client.post(
                            running.base_url + "/api/v1/redemptions",
                            json={
                                "customer_id": rng.choice(customers),
                                "reward_id": "amount-off",
                                "idempotency_key": uuid.uuid4().hex,
                            },  # fmt: skip
                            headers=auth,
                        )
                        code = response.json().get("error", {}).get("code", "")
                        answers[f"{response.status_code} {code}".strip()] += 1

                async with httpx.AsyncClient(timeout=120) as client:
                    for customer in customers:
                        await grant(client, customer)
                    await asyncio.gather(*(one(client) for _ in range(redemptions)))
                return answers

            answers = asyncio.run(redeem_all())
            with urllib.request.urlopen(shopify + "/_fake/state", timeout=5) as answer:
                state = json.loads(answer.read())
        verdict.note(f"Stamp's answers: {dict(answers)}")
        verdict.note(f"fake Shopify outcomes: {state['outcomes']}")
        books = cluster.task(env, "books", str(shop_id))
        statuses = books["redemptions"]
        verdict.note(f"redemptions by status: {statuses}; points given back: "
                     f"{books['returned_entries']}")  # fmt: skip
        verdict.check("no 500 from Stamp", not any(key.startswith("500") for key in answers))
        faulted = sum(n for outcome, n in state["outcomes"].items() if outcome != "ok")
        verdict.check(f"Shopify's faults were met ({faulted} faulty answers)", faulted > 0)
        verdict.check("no redemption left pending", statuses.get("pending", 0) == 0)
        verdict.check("every issued code exists at Shopify",
                      set(books["issued_codes"]) <= set(state["code_list"]))  # fmt: skip
        verdict.check("every failed redemption gave its points back",
                      books["returned_entries"] == statuses.get("failed", 0))  # fmt: skip
        verdict.check("stamp ledger verify: no drift", books["drift"] == [])
    return verdict


SCENARIOS: dict[str, Callable[[Path], Verdict]] = {
    "postgres-restart": postgres_restart,
    "worker-kill": worker_kill,
    "redis-down": redis_down,
    "shopify-faults": shopify_faults,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(SCENARIOS))
    args = parser.parse_args(argv)
    names = [n for n in SCENARIOS if not args.only or n in args.only.split(",")]
    verdicts: list[Verdict] = []
    for name in names:
        print(f"\n=== {name}", flush=True)
        with tempfile.TemporaryDirectory(prefix=f"stamp-fault-{name}-") as tmp:
            try:
                verdicts.append(SCENARIOS[name](Path(tmp)))
            except Exception as exc:  # a scenario that cannot finish is a failed verdict
                failed = Verdict(name)
                failed.check(f"scenario ran to the end ({type(exc).__name__}: {exc})", False)
                verdicts.append(failed)
    print("\nFault verdicts")
    for verdict in verdicts:
        print(f"  {verdict.scenario:<18} {'PASSED' if verdict.passed else 'FAILED'}")
    return 0 if all(v.passed for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
