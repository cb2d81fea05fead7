"""Klaviyo first-sync benchmark: N members against a local fake Klaviyo with real limits.

    .venv/bin/python -m bench.klaviyo_sync [--members 100000] [--db postgresql|sqlite]
                                           [--job-seconds 2.0] [--json out.json]

1. create a fresh database (PostgreSQL at 127.0.0.1:5432, or a SQLite file) and migrate it
   (creating any integration table the migrations do not have yet),
2. seed an installed shop and N members in one bulk insert (COPY on PostgreSQL),
3. start the fake Klaviyo (tests/integrations/fake_klaviyo.py) on 127.0.0.1: it enforces
   the documented limits (profile-import 75/s and 700/min, bulk jobs 10/s and 150/min,
   10,000 profiles and 5 MB per import job) and finishes each import job `--job-seconds`
   after it was created,
4. connect Klaviyo (one key check, not counted), then time the shop's first sync,
5. check that every member's profile reached the fake with its balance and that the
   backlog is empty, then print HTTP requests per member and wall time against the
   targets (<= 0.001 requests per member, < 60 s) with MET or MISSED.

Only 127.0.0.1 is contacted; the database is dropped on the way out, failures included.
A naive one-request-per-member sync would need N / 700 minutes (over two hours for
100,000 members) under the profile-import limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.intake import create_database, drop_database

SHOP_DOMAIN = "bench-klaviyo.myshopify.com"
TARGET_REQUESTS_PER_MEMBER = 0.001
TARGET_SECONDS = 60.0
TIERS = ("Bronze", "Silver", "Gold")


@dataclass(slots=True)
class Result:
    database: str
    members: int
    seed_seconds: float
    sync_seconds: float
    requests: int
    requests_by_endpoint: dict[str, int]
    throttled: int
    jobs: int
    profiles_correct: int
    backlog_after: int
    status: str

    @property
    def requests_per_member(self) -> float:
        return self.requests / self.members

    @property
    def met(self) -> bool:
        return (
            self.requests_per_member <= TARGET_REQUESTS_PER_MEMBER
            and self.sync_seconds < TARGET_SECONDS
            and self.profiles_correct == self.members
            and self.backlog_after == 0
        )


def balance_of(i: int) -> int:
    return (i * 37) % 5_000


# --- databases -------------------------------------------------------------------------


def member_rows(shop_id: int, count: int) -> list[tuple[Any, ...]]:
    now = datetime.now(UTC)
    expires = now + timedelta(days=30)
    return [
        (
            shop_id,
            f"member{i:06d}@bench.example",
            i % 3 == 0,
            f"B{i:07d}",
            balance_of(i),
            i % 11,
            balance_of(i) + 100,
            TIERS[i % 3],
            50 if i % 10 == 0 else 0,
            expires if i % 10 == 0 else None,
            now,
        )
        for i in range(count)
    ]


COLUMNS = [
    "shop_id",
    "email",
    "is_account",
    "referral_code",
    "points_balance",
    "pending_points",
    "lifetime_points",
    "tier_name",
    "expiring_points",
    "expiring_at",
    "created_at",
]


async def seed_members(database_url: str, kind: str, shop_id: int, count: int) -> None:
    """One bulk insert: COPY on PostgreSQL, executemany on SQLite."""
    rows = member_rows(shop_id, count)
    if kind == "postgresql":
        import asyncpg

        connection = await asyncpg.connect(database_url)
        try:
            await connection.copy_records_to_table("members", records=rows, columns=COLUMNS)
        finally:
            await connection.close()
        return
    path = database_url[len("sqlite:///") :]

    def insert() -> None:
        connection = sqlite3.connect(path)
        try:
            placeholders = ", ".join("?" for _ in COLUMNS)
            connection.executemany(
                f"INSERT INTO members ({', '.join(COLUMNS)}) VALUES ({placeholders})",
                [
                    tuple(
                        v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else v
                        for v in row
                    )
                    for row in rows
                ],
            )
            connection.commit()
        finally:
            connection.close()

    await asyncio.to_thread(insert)


# --- the run ---------------------------------------------------------------------------


async def run(kind: str, database_url: str, members: int, job_seconds: float) -> Result:
    from app.db import unit_of_work
    from app.integrations.klaviyo import service, sync
    from app.models import Shop
    from app.models.base import utcnow
    from app.settings import Settings
    from app.state import State
    from tests.integrations.fake_klaviyo import KEY, FakeKlaviyo

    fake = FakeKlaviyo(job_seconds=job_seconds).start()
    settings = Settings(
        DATABASE_URL=database_url,
        KLAVIYO_API_URL=fake.base_url,
        ALLOW_PRIVATE_URLS=True,
    )
    state = State.create(settings)
    try:
        async with unit_of_work(state.sessionmaker) as session:
            shop = Shop(domain=SHOP_DOMAIN, name="Bench", installed_at=utcnow())
            session.add(shop)
            await session.flush()
            shop_id = shop.id
        started = time.perf_counter()
        await seed_members(database_url, kind, shop_id, members)
        seed_seconds = time.perf_counter() - started

        async with state.sessionmaker() as session:
            found = await session.get(Shop, shop_id)
            assert found is not None
        key = await service.check_key(state, KEY)
        async with unit_of_work(state.sessionmaker) as session:
            await service.save_key(session, state.cipher, found, key)
        before = fake.snapshot()["total_requests"]

        started = time.perf_counter()
        report = await sync.sync_shop(state, shop_id)
        sync_seconds = time.perf_counter() - started

        seen = fake.snapshot()
        profiles = seen["profiles"]
        correct = sum(
            1
            for i in range(members)
            if profiles.get(f"member{i:06d}@bench.example", {}).get("Stamp Points Balance")
            == balance_of(i)
        )
        async with state.sessionmaker() as session:
            status = await service.status(session, found)
        by_endpoint = dict(seen["requests"])
        by_endpoint["GET /api/profiles"] = by_endpoint.get("GET /api/profiles", 0) - 1
        return Result(
            database=kind,
            members=members,
            seed_seconds=seed_seconds,
            sync_seconds=sync_seconds,
            requests=seen["total_requests"] - before,
            requests_by_endpoint={k: v for k, v in by_endpoint.items() if v},
            throttled=sum(seen["throttled"].values()),
            jobs=report.jobs,
            profiles_correct=correct,
            backlog_after=status.backlog.profiles,
            status=report.status if report.error is None else f"{report.status}: {report.error}",
        )
    finally:
        await state.aclose()
        fake.stop()


def _verdict(met: bool) -> str:
    return "MET" if met else "MISSED"


def print_result(result: Result, job_seconds: float) -> None:
    per_member = result.requests_per_member
    print(
        f"Klaviyo first sync: {result.members:,} members on {result.database}, against the "
        f"local fake Klaviyo (documented limits; import jobs finish {job_seconds:g} s after "
        "creation)"
    )
    print(f"  seeded members (bulk insert)  {result.seed_seconds:8.2f} s")
    print(f"  sync status                   {result.status}")
    print(f"  HTTP requests                 {result.requests:8d}   {result.requests_by_endpoint}")
    print(f"  throttled (429) answers       {result.throttled:8d}")
    print(
        f"  requests per member           {per_member:8.5f}   target <= "
        f"{TARGET_REQUESTS_PER_MEMBER}   {_verdict(per_member <= TARGET_REQUESTS_PER_MEMBER)}"
    )
    print(
        f"  wall time (first sync)        {result.sync_seconds:8.2f} s target < "
        f"{TARGET_SECONDS:g} s     {_verdict(result.sync_seconds < TARGET_SECONDS)}"
    )
    print(
        f"  profiles correct in Klaviyo   {result.profiles_correct:8d} / {result.members}   "
        f"{_verdict(result.profiles_correct == result.members)}"
    )
    print(f"  backlog after the sync        {result.backlog_after:8d}")
    naive_minutes = result.members / 700
    print(f"  (one request per member would need >= {naive_minutes:.0f} min at 700/min)")
    print(f"Overall: {_verdict(result.met)}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Klaviyo first-sync benchmark")
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--job-seconds", type=float, default=2.0)
    parser.add_argument("--json", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The connect step queues a sync job: keep it in memory, away from any real queue.
    os.environ["QUEUE_URL"] = "memory://"
    os.environ.setdefault("STAMP_ENV", "dev")
    from app import migrate

    with tempfile.TemporaryDirectory(prefix="stamp-klaviyo-bench-") as workdir:
        database_url, name = create_database(args.db, Path(workdir))
        try:
            migrate.upgrade(database_url)
            result = asyncio.run(run(args.db, database_url, args.members, args.job_seconds))
        finally:
            drop_database(args.db, name)
    print_result(result, args.job_seconds)
    if args.json:
        args.json.write_text(json.dumps(asdict(result) | {"met": result.met}, indent=2))
    return 0 if result.met else 1


if __name__ == "__main__":
    sys.exit(main())
