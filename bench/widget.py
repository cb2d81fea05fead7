"""Storefront widget benchmark: the loader's weight and the widget JSON under open-loop load.

    .venv/bin/python -m bench.widget [--rate 300] [--duration 20] [--warmup 3]
                                     [--db postgresql|sqlite|both] [--guests 0.2]
                                     [--client raw|httpx] [--workers 1]
                                     [--py-spy PATH] [--json out.json]

1. Loader size: gzip -9 of widgets/static/stamp-loader.js (the only file every storefront
   page loads); stamp-panel.js and stamp.css (fetched only when the panel opens) for
   information. Target: loader <= 10 KB gzipped.
2. Widget JSON latency, per database: a fresh database (PostgreSQL on 127.0.0.1:5432,
   created and dropped here; or a temporary SQLite file), migrated, then a real uvicorn
   server (`app.main:app`, DEMO_MODE=1, STAMP_ENV=dev, uvloop + httptools, one worker
   unless --workers) seeded with the demo shop through `app.demo.seed.seed`: the 8 demo
   shoppers arrive as signed webhooks over HTTP, as `stamp demo` does it. Then
   `GET /proxy/api/state` with valid Shopify app-proxy signatures (shop,
   logged_in_customer_id, path_prefix, timestamp, plus the widget's locale and device)
   for the seeded shoppers who have a customer id (signed in) and for guests (empty
   logged_in_customer_id), --guests of them, at an OPEN-LOOP arrival rate: request i is
   due at t0 + i/rate whatever happened to the others, and its latency is measured from
   that due time (no coordinated omission). The first --warmup seconds are sent but not
   counted. Every URL is signed before the run (timestamps stay inside Shopify's
   10-minute window). The generator is a small asyncio HTTP/1.1 keep-alive client
   (raw streams; --client httpx for httpx.AsyncClient) that opens a connection whenever
   none is idle; it reports the rate it achieved and how late sends left, so a generator
   that did not keep up is visible. A response counts as good when it is 200 and holds a
   member for a signed-in shopper and none for a guest. Target: p99 < 50 ms at 300/s.
3. SQL per request: in this process, after the server has stopped, the same endpoint is
   called through an ASGI transport with a SQLAlchemy `before_cursor_execute` listener on
   the engine, so the statement count and the statements themselves are printed.
   --py-spy PATH also records the server with py-spy during the measured run (install
   it with `python -m venv /tmp/pyspy && /tmp/pyspy/bin/pip install py-spy`) and prints
   the functions that took the most samples.

Figures are printed with their target and MET or MISSED; nothing is asserted. Only
127.0.0.1 is contacted; the server, the databases and the temporary files are removed on
the way out, failures and Ctrl-C included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import os
import platform
import random
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.intake import create_database, drop_database

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STATIC = ROOT / "widgets" / "static"
HOST = "127.0.0.1"

SECRET = "bench-widget-shopify-secret-0123456789abcdef"
PATH_PREFIX = "/apps/stamp"
TARGET_LOADER_KB = 10.0
TARGET_P99_MS = 50.0
TARGET_RATE = 300.0
MAX_SIGNED_SECONDS = 540  # Shopify's window (and the app's check) is 600 s
HAS_PROC = Path("/proc/stat").exists()
LABELS = {"postgresql": "PostgreSQL 15", "sqlite": "SQLite (WAL)"}


# --- 1. sizes ----------------------------------------------------------------------------


def asset_sizes() -> dict[str, dict[str, int]]:
    sizes: dict[str, dict[str, int]] = {}
    for name in ("stamp-loader.js", "stamp-panel.js", "stamp.css"):
        raw = (STATIC / name).read_bytes()
        sizes[name] = {"bytes": len(raw), "gzip9": len(gzip.compress(raw, 9, mtime=0))}
    return sizes


# --- databases and server ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def server_env(database_url: str, queue_url: str, base_url: str) -> dict[str, str]:
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    env.update(
        STAMP_ENV="dev",
        DEMO_MODE="1",
        DATABASE_URL=database_url,
        QUEUE_URL=queue_url,
        APP_URL=base_url,
        SHOPIFY_ADMIN_URL=base_url + "/demo/shopify-admin/{shop}",
        SHOPIFY_API_SECRET=SECRET,
        SHOPIFY_API_KEY="bench-widget-api-key",
        PYTHONDONTWRITEBYTECODE="1",
        # One load generator on one address stands for thousands of shoppers: the storefront
        # rate limiter still runs on every request (its cost is measured) but never refuses.
        RATE_LIMIT_RATE="1000000000",
        RATE_LIMIT_BURST="1000000000",
    )
    return env


def migrate(env: dict[str, str]) -> None:
    code = "import os; from app import migrate; migrate.upgrade(os.environ['DATABASE_URL'])"
    done = subprocess.run(
        [str(BIN / "python"), "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"migration failed:\n{done.stderr[-2000:]}")


def _stop(process: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
    # Worker processes (--workers > 1) share the group; make sure none outlives the parent.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def uvicorn_server(
    env: dict[str, str], port: int, workers: int, log: Path
) -> Iterator[subprocess.Popen[Any]]:
    command = [
        str(BIN / "uvicorn"), "app.main:app", "--host", HOST, "--port", str(port),
        "--log-level", "warning", "--no-access-log", "--loop", "uvloop", "--http", "httptools",
        "--workers", str(workers), "--timeout-keep-alive", "120",
    ]  # fmt: skip
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {process.returncode}: {_tail(log)}")
            try:
                with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not answer /healthz in 30 s: {_tail(log)}")
            time.sleep(0.1)
        if workers > 1:
            time.sleep(1.5)
        yield process
    finally:
        _stop(process)


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-2000:]
    except OSError:
        return ""


def _settings(database_url: str, queue_url: str, base_url: str) -> Any:
    from app.settings import Settings

    return Settings(
        _env_file=None,
        STAMP_ENV="dev",
        DEMO_MODE=True,
        DATABASE_URL=database_url,
        QUEUE_URL=queue_url,
        APP_URL=base_url,
        SHOPIFY_API_SECRET=SECRET,
        SHOPIFY_API_KEY="bench-widget-api-key",
    )


async def seed_demo(settings: Any, base_url: str) -> dict[str, Any]:
    """The demo shop and its shoppers, delivered as signed webhooks to the running server;
    then each seeded member's customer id and balance, read back for the pre-flight check."""
    import httpx
    from sqlalchemy import select

    from app.demo import DEMO_SHOP
    from app.demo.seed import seed
    from app.models import Member, Shop
    from app.state import State

    state = State.create(settings)
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
            result = await seed(client, state)
        async with state.sessionmaker() as session:
            shop = await session.scalar(select(Shop).where(Shop.domain == DEMO_SHOP))
            assert shop is not None
            rows = await session.execute(
                select(Member.customer_id, Member.points_balance).where(Member.shop_id == shop.id)
            )
            members = {str(cid): int(bal) for cid, bal in rows if cid}
        return {"webhooks": result.total, "processed": result.processed, "members": members}
    finally:
        await state.aclose()


# --- signed requests -----------------------------------------------------------------------


def signed_target(customer_id: str, timestamp: int, device: str) -> str:
    """What Shopify's proxy forwards for the widget's `GET {prefix}/api/state`."""
    from app.demo import DEMO_SHOP
    from app.integrations.shopify.signing import app_proxy_signature

    params = [
        ("locale", "en"),
        ("device", device),
        ("shop", DEMO_SHOP),
        ("logged_in_customer_id", customer_id),
        ("path_prefix", PATH_PREFIX),
        ("timestamp", str(timestamp)),
    ]
    params.append(("signature", app_proxy_signature(SECRET, params)))
    return "/proxy/api/state?" + urlencode(params)


@dataclass(slots=True)
class Planned:
    due: float  # seconds after t0
    target: str
    member: bool  # a signed-in shopper (expects a member in the answer)
    counted: bool  # after the warm-up


def plan(customers: list[str], rate: float, warmup: float, duration: float, guests: float,
         seed: int = 7) -> list[Planned]:  # fmt: skip
    rng = random.Random(seed)
    now = int(time.time())
    total = int(round((warmup + duration) * rate))
    planned: list[Planned] = []
    for i in range(total):
        due = i / rate
        guest = rng.random() < guests
        customer = "" if guest else rng.choice(customers)
        device = uuid.UUID(int=rng.getrandbits(128)).hex[:16]
        planned.append(Planned(due, signed_target(customer, now, device), not guest, due >= warmup))
    return planned


# --- clients -------------------------------------------------------------------------------


class ConnectionLimit(RuntimeError):
    """The client already holds --connections open connections, all busy."""


class RawClient:
    """HTTP/1.1 keep-alive GETs over asyncio streams; a new connection whenever none is idle."""

    def __init__(self, port: int, limit: int = 2000) -> None:
        self.port = port
        self.limit = limit
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0
        self.open_now = 0
        self.peak_open = 0
        self.host_header = f"Host: {HOST}:{port}\r\n".encode()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.open_now >= self.limit:
            raise ConnectionLimit(f"{self.limit} connections open, all busy")
        self.open_now += 1
        try:
            reader, writer = await asyncio.open_connection(HOST, self.port, limit=1 << 20)
        except BaseException:
            self.open_now -= 1
            raise
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.opened += 1
        self.peak_open = max(self.peak_open, self.open_now)
        return reader, writer

    def _close(self, writer: asyncio.StreamWriter) -> None:
        self.open_now -= 1
        writer.close()

    async def get(self, target: str) -> tuple[int, bytes]:
        conn = self.idle.pop() if self.idle else await self._connect()
        reader, writer = conn
        try:
            writer.write(
                b"GET " + target.encode() + b" HTTP/1.1\r\n" + self.host_header
                + b"Accept: application/json\r\nUser-Agent: stamp-bench-widget\r\n\r\n"
            )  # fmt: skip
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            if "content-length" in headers:
                body = await reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    chunks.append(await reader.readexactly(size + 2))
                    if size == 0:
                        break
                body = b"".join(chunk[:-2] for chunk in chunks)
            else:
                body = await reader.read()
                headers["connection"] = "close"
        except BaseException:
            self._close(writer)
            raise
        if headers.get("connection", "").lower() == "close":
            self._close(writer)
        else:
            self.idle.append(conn)
        return status, body

    async def aclose(self) -> None:
        while self.idle:
            self._close(self.idle.pop()[1])


class HttpxClient:
    def __init__(self, port: int, limit: int = 2000) -> None:
        import httpx

        self.client = httpx.AsyncClient(
            base_url=f"http://{HOST}:{port}",
            limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
            timeout=None,
        )
        self.opened = self.peak_open = 0  # not visible through httpx

    async def get(self, target: str) -> tuple[int, bytes]:
        response = await self.client.get(target)
        return response.status_code, response.content

    async def aclose(self) -> None:
        await self.client.aclose()


# --- open loop -----------------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    due: float
    started: float = 0.0
    done: float = 0.0
    status: int = 0
    error: str | None = None
    counted: bool = True


def _good(status: int, body: bytes, member: bool) -> str | None:
    if status != 200:
        return f"HTTP {status}"
    if not body.startswith(b"{"):
        return "not JSON"
    has_member = b'"member":{' in body
    if member != has_member:
        return "member missing" if member else "member for a guest"
    return None


async def open_loop(
    get: Callable[[str], Awaitable[tuple[int, bytes]]], planned: list[Planned], limit_s: float
) -> tuple[list[Outcome], float]:
    """Send each planned request at its due time, without waiting for earlier answers."""
    clock = time.perf_counter
    outcomes = [Outcome(due=p.due, counted=p.counted) for p in planned]
    tasks: set[asyncio.Task[None]] = set()

    async def one(index: int, t0: float) -> None:
        item, outcome = planned[index], outcomes[index]
        outcome.started = clock() - t0
        try:
            async with asyncio.timeout(limit_s):
                status, body = await get(item.target)
            outcome.status = status
            outcome.error = _good(status, body, item.member)
        except TimeoutError:
            outcome.error = "timeout"
        except ConnectionLimit:
            outcome.error = "not sent: client connection limit"
        except Exception as exc:
            outcome.error = type(exc).__name__
        outcome.done = clock() - t0

    t0 = clock() + 0.05
    for index, item in enumerate(planned):
        delay = t0 + item.due - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(index, t0))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(set(tasks), timeout=limit_s + 5)
    return outcomes, t0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


# --- CPU accounting (Linux /proc) ---------------------------------------------------------


def _cpu_snapshot(server_group: int) -> dict[str, Any]:
    """Busy ticks of the machine, and per pid of the server's process group and PostgreSQL."""
    snap: dict[str, Any] = {"machine": 0, "server": {}, "postgres": {}}
    if not HAS_PROC:
        return snap
    snap["machine"] = _machine_ticks()[0]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        rest = raw[raw.rindex(")") + 2 :].split()
        ticks = int(rest[11]) + int(rest[12])
        if int(rest[2]) == server_group:
            snap["server"][entry.name] = ticks
        elif comm == "postgres":
            snap["postgres"][entry.name] = ticks
    return snap


def _cores(before: dict[str, Any], after: dict[str, Any], seconds: float) -> dict[str, float]:
    """Cores used between two snapshots; a process that started meanwhile counts from zero
    (one that exited meanwhile is lost, so PostgreSQL backends closed by the pool are
    under-counted)."""
    if seconds <= 0:
        return {}
    hz = os.sysconf("SC_CLK_TCK")
    cores = {"machine": (after["machine"] - before["machine"]) / hz / seconds}
    for role in ("server", "postgres"):
        ticks = sum(t - before[role].get(pid, 0) for pid, t in after[role].items())
        cores[role] = ticks / hz / seconds
    return cores


def _machine_ticks() -> tuple[int, int]:
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return fields[0] + fields[1] + fields[2] + fields[5] + fields[6], sum(fields)


async def wait_for_quiet(threshold: float, patience: float) -> float:
    """Wait (at most `patience` s) until the rest of the machine uses under `threshold`
    cores over a second: on a shared box other work starves the server under test."""
    if patience <= 0 or not HAS_PROC:
        return 0.0
    hz = os.sysconf("SC_CLK_TCK")
    started = time.perf_counter()
    while time.perf_counter() - started < patience:
        busy0, _ = _machine_ticks()
        await asyncio.sleep(1.0)
        busy1, _ = _machine_ticks()
        if (busy1 - busy0) / hz < threshold:
            break
    return round(time.perf_counter() - started, 1)


# --- SQL per request (in process) ----------------------------------------------------------


async def sql_profile(settings: Any, customer: str, rounds: int = 30) -> dict[str, Any]:
    """Statements and in-process time per `GET /proxy/api/state`, for a member and a guest."""
    import httpx
    from sqlalchemy import event

    from app.main import create_app
    from app.state import State

    state = State.create(settings)
    application = create_app(settings)
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(state.engine.sync_engine, "before_cursor_execute", count)

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        await application({**scope, "state": {"stamp": state}}, receive, send)

    result: dict[str, Any] = {}
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=asgi), base_url="http://bench"
        ) as client:
            for label, customer_id in (("member", customer), ("guest", "")):
                target = signed_target(customer_id, int(time.time()), "profile")
                for _ in range(3):  # warm the pool and the caches
                    await client.get(target)
                statements.clear()
                started = time.perf_counter()
                for _ in range(rounds):
                    response = await client.get(target)
                    if response.status_code != 200:
                        raise RuntimeError(f"profile request answered {response.status_code}")
                elapsed = time.perf_counter() - started
                per = Counter(statements)
                result[label] = {
                    "statements_per_request": len(statements) / rounds,
                    "ms_per_request_in_process": elapsed * 1000 / rounds,
                    "statements": [
                        {"per_request": n / rounds, "sql": sql[:160]}
                        for sql, n in per.most_common()
                    ],
                }
    finally:
        event.remove(state.engine.sync_engine, "before_cursor_execute", count)
        await state.aclose()
    return result


# --- py-spy (optional) ---------------------------------------------------------------------


def start_py_spy(py_spy: str, pid: int, seconds: float, out: Path) -> subprocess.Popen[Any]:
    command = [py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)),
               "--subprocesses", "--rate", "200", "--format", "raw", "--output", str(out),
               "--nonblocking"]  # fmt: skip
    return subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )


PACKAGES = (
    ("asyncpg", "asyncpg/"), ("aiosqlite / sqlite3", "aiosqlite/"), ("sqlite3", "sqlite3/"),
    ("SQLAlchemy", "sqlalchemy/"), ("greenlet", "greenlet"), ("Starlette", "starlette/"),
    ("uvicorn / httptools", "uvicorn/"), ("pydantic", "pydantic"), ("json", "json/"),
    ("orjson", "orjson"), ("Stamp (app/, widgets/)", "(app/"),
    ("Stamp (app/, widgets/)", "(widgets/"),
    ("asyncio / uvloop", "asyncio/"), ("asyncio / uvloop", "uvloop"),
)  # fmt: skip


def _package(frame: str) -> str:
    for name, key in PACKAGES:
        if key in frame:
            return name
    return "other"


def summarize_py_spy(raw: Path, top: int = 15) -> dict[str, Any]:
    """From py-spy's collapsed stacks: the share of samples each package spent on top of the
    stack (self), and the Stamp functions with the most samples under them (inclusive)."""
    own: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [re.sub(r" \(/\S*?/(site-packages|main)/", " (", f) for f in stack.split(";")]
        total += count
        own[frames[-1]] += count
        packages[_package(frames[-1])] += count
        for frame in set(frames):
            if "(app/" in frame or "(widgets/" in frame:
                inclusive[frame] += count
    share = (lambda n: round(100 * n / total, 1)) if total else (lambda n: 0.0)
    return {
        "samples": total,
        "packages_self": [(name, share(n)) for name, n in packages.most_common()],
        "self_top": [(f, share(n)) for f, n in own.most_common(top)],
        "inclusive_top": [(f, share(n)) for f, n in inclusive.most_common(top)],
    }


# --- one case ------------------------------------------------------------------------------


@dataclass(slots=True)
class Case:
    database: str
    rate: float
    duration: float
    client: str
    workers: int
    requests: int = 0
    members_share: float = 0.0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    p999_ms: float = 0.0
    max_ms: float = 0.0
    service_p50_ms: float = 0.0
    service_p99_ms: float = 0.0
    member_p99_ms: float = 0.0
    guest_p99_ms: float = 0.0
    sent_rate: float = 0.0
    answered_rate: float = 0.0
    late_p50_ms: float = 0.0
    late_p99_ms: float = 0.0
    late_max_ms: float = 0.0
    connections_opened: int = 0
    connections_peak: int = 0
    cpu_cores: dict[str, float] = field(default_factory=dict)
    cpu_ms_per_answer: dict[str, float] = field(default_factory=dict)
    quiet_wait_s: float = 0.0
    pg_backends_seen: int = 0
    pg_backends_peak: int = 0
    seed: dict[str, Any] = field(default_factory=dict)
    sql: dict[str, Any] = field(default_factory=dict)
    py_spy: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    timeout: float = 10.0

    @property
    def saturated(self) -> bool:
        return any(key == "timeout" or key.startswith("not sent") for key in self.errors) or (
            self.requests > 0 and self.answered_rate < 0.9 * self.rate
        )

    @property
    def met(self) -> bool:
        return (
            self.error is None and self.p99_ms < TARGET_P99_MS and not self.errors
            and self.rate >= TARGET_RATE and self.sent_rate >= 0.98 * self.rate
        )  # fmt: skip


def measure(case: Case, outcomes: list[Outcome], planned: list[Planned]) -> None:
    counted = [(o, p) for o, p in zip(outcomes, planned, strict=True) if o.counted]
    case.requests = len(counted)
    case.members_share = sum(p.member for _, p in counted) / max(len(counted), 1)
    finished = [(o, p) for o, p in counted if o.done > 0]
    good = [(o, p) for o, p in finished if o.error is None]
    case.ok = len(good)
    errors = Counter(o.error or "no answer" for o, _ in counted if o.error or o.done == 0)
    case.errors = dict(errors)
    # Latency from the due time, for every counted request that finished (errors included:
    # a failure is an answer the shopper waited for), so nothing is hidden.
    latency = [(o.done - o.due) * 1000 for o, _ in finished]
    case.p50_ms, case.p90_ms, case.p99_ms, case.p999_ms = (
        percentile(latency, q) for q in (50, 90, 99, 99.9)
    )
    case.max_ms = max(latency, default=float("nan"))
    unanswered = case.requests - len(finished)
    if unanswered:
        case.max_ms = float("inf")
    service = [(o.done - o.started) * 1000 for o, _ in finished]
    case.service_p50_ms, case.service_p99_ms = percentile(service, 50), percentile(service, 99)
    case.member_p99_ms = percentile([(o.done - o.due) * 1000 for o, p in finished if p.member], 99)
    case.guest_p99_ms = percentile(
        [(o.done - o.due) * 1000 for o, p in finished if not p.member], 99
    )
    late = [(o.started - o.due) * 1000 for o, _ in counted if o.started]
    case.late_p50_ms, case.late_p99_ms = percentile(late, 50), percentile(late, 99)
    case.late_max_ms = max(late, default=float("nan"))
    starts = [o.started for o, _ in counted if o.started]
    span = (max(starts) - min(starts)) if len(starts) > 1 else 0.0
    case.sent_rate = (len(starts) - 1) / span if span else 0.0
    dones = [o.done for o, _ in finished]
    first_due = min((o.due for o, _ in counted), default=0.0)
    case.answered_rate = len(dones) / (max(dones) - first_due) if dones else 0.0


async def watch_backends(case: Case, database: str) -> None:
    """PostgreSQL connections the server holds, sampled 4 times a second: a pool that keeps
    opening connections (each one a TCP + auth + type introspection) shows as many pids."""
    import asyncpg

    connection = await asyncpg.connect(host=HOST, port=5432, user="postgres", database="postgres")
    seen: set[int] = set()
    try:
        while True:
            rows = await connection.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                database,
            )
            seen.update(row["pid"] for row in rows)
            case.pg_backends_seen = len(seen)
            case.pg_backends_peak = max(case.pg_backends_peak, len(rows))
            await asyncio.sleep(0.25)
    finally:
        await connection.close()


async def drive(case: Case, args: argparse.Namespace, port: int, planned: list[Planned],
                server_group: int, raw_spy: Path | None, database: str | None) -> None:  # fmt: skip
    client = HttpxClient(port) if args.client == "httpx" else RawClient(port)
    try:
        # Pre-flight: every kind of visitor answers correctly before the clock starts.
        seen: set[bool] = set()
        for item in planned:
            if item.member in seen:
                continue
            status, body = await client.get(item.target)
            problem = _good(status, body, item.member)
            if problem:
                raise RuntimeError(f"pre-flight: {problem}: {body[:300]!r}")
            seen.add(item.member)
        case.quiet_wait_s = await wait_for_quiet(args.quiet, args.wait_quiet)
        spy = None
        if raw_spy is not None:
            spy = start_py_spy(args.py_spy, server_group, args.warmup + args.duration, raw_spy)
        before, usage0, wall0 = (
            _cpu_snapshot(server_group),
            resource.getrusage(resource.RUSAGE_SELF),
            time.perf_counter(),
        )
        watcher = asyncio.create_task(watch_backends(case, database)) if database else None
        try:
            outcomes, _ = await open_loop(client.get, planned, args.timeout)
        finally:
            if watcher is not None:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
        wall = time.perf_counter() - wall0
        after, usage1 = _cpu_snapshot(server_group), resource.getrusage(resource.RUSAGE_SELF)
        cores = _cores(before, after, wall)
        cores["generator"] = (
            usage1.ru_utime + usage1.ru_stime - usage0.ru_utime - usage0.ru_stime
        ) / wall
        cores["other"] = max(
            cores.get("machine", 0.0) - cores["server"] - cores["postgres"] - cores["generator"],
            0.0,
        )
        if case.database == "sqlite":
            cores.pop("postgres", None)
        case.cpu_cores = {k: round(v, 2) for k, v in cores.items()}
        answered = sum(1 for o in outcomes if o.done and o.error != "timeout")
        if answered:
            case.cpu_ms_per_answer = {
                role: round(cores[role] * wall * 1000 / answered, 2)
                for role in ("server", "postgres")
                if role in cores
            }
        measure(case, outcomes, planned)
        case.connections_opened = client.opened
        case.connections_peak = client.peak_open
        if spy is not None:
            try:
                _, err = spy.communicate(timeout=60)
                if spy.returncode != 0:
                    case.py_spy = {"error": err.decode(errors="replace")[-500:]}
            except subprocess.TimeoutExpired:
                _stop(spy)
    finally:
        await client.aclose()


def wait_drained(port: int, patience: float = 90.0) -> None:
    """After an overload the server still works through requests the client gave up on;
    wait until /healthz answers quickly before the next rate starts."""
    deadline = time.monotonic() + patience
    quick = 0
    while time.monotonic() < deadline and quick < 3:
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=5) as answer:
                answer.read()
            quick = quick + 1 if time.perf_counter() - started < 0.02 else 0
        except OSError:
            quick = 0
        time.sleep(0.2)


def run_cases(kind: str, args: argparse.Namespace, workdir: Path) -> list[Case]:
    """One database and one server; each rate of --rate in turn, lowest first."""
    cases = [
        Case(kind, rate, args.duration, args.client, args.workers, timeout=args.timeout)
        for rate in args.rates
    ]
    database_url, to_drop = create_database(kind, workdir)
    try:
        queue_url = f"sqlite:///{workdir / f'queue-{kind}.db'}"
        port = free_port()
        base_url = f"http://{HOST}:{port}"
        env = server_env(database_url, queue_url, base_url)
        migrate(env)
        settings = _settings(database_url, queue_url, base_url)
        log = workdir / f"uvicorn-{kind}.log"
        with uvicorn_server(env, port, args.workers, log) as server:
            seeded = asyncio.run(seed_demo(settings, base_url))
            customers = sorted(seeded["members"])
            if not customers:
                raise RuntimeError("the seed left no signed-in shoppers")
            for index, case in enumerate(cases):
                case.seed = seeded
                if index:
                    wait_drained(port)
                try:
                    planned = plan(customers, case.rate, args.warmup, args.duration, args.guests)
                    spy_out = workdir / f"py-spy-{kind}-{index}.txt" if args.py_spy else None
                    database = to_drop if kind == "postgresql" else None
                    _run_loop(drive(case, args, port, planned, server.pid, spy_out, database))
                    if spy_out is not None and spy_out.exists() and not case.py_spy:
                        case.py_spy = summarize_py_spy(spy_out)
                except Exception as exc:
                    case.error = f"{type(exc).__name__}: {exc}"
        sql = asyncio.run(sql_profile(settings, customers[0]))
        for case in cases:
            case.sql = sql
    except Exception as exc:
        for case in cases:
            case.error = case.error or f"{type(exc).__name__}: {exc}"
    finally:
        drop_database(kind, to_drop)
    return cases


def _run_loop(coroutine: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


# --- report --------------------------------------------------------------------------------


def _mark(met: bool) -> str:
    return "MET" if met else "MISSED"


def _verdict(case: Case) -> str:
    if case.rate < TARGET_RATE and case.error is None:
        return "(below the target rate: for information)"
    return _mark(case.met)


def print_sizes(sizes: dict[str, dict[str, int]]) -> None:
    loader_kb = sizes["stamp-loader.js"]["gzip9"] / 1024
    print("Widget assets (gzip -9)")
    for name, size in sizes.items():
        line = f"  {name:<16} {size['bytes'] / 1024:7.1f} KB raw  {size['gzip9'] / 1024:6.2f} KB gz"
        if name == "stamp-loader.js":
            met = loader_kb <= TARGET_LOADER_KB
            line += f"   target <= {TARGET_LOADER_KB:.0f} KB gz   {_mark(met)}"
        else:
            line += "   (loaded only when the panel opens)"
        print(line)


def print_case(case: Case, details: bool = True) -> None:
    print()
    print(
        f"GET /proxy/api/state, {LABELS[case.database]}, open loop {case.rate:.0f}/s for "
        f"{case.duration:.0f} s (uvicorn --workers {case.workers}, client {case.client})"
    )
    if case.error:
        print(f"  FAILED: {case.error}")
        print(f"  target p99 < {TARGET_P99_MS:.0f} ms   MISSED (no figure)")
        return
    print(
        f"  seeded: {case.seed.get('webhooks')} signed webhooks, "
        f"{len(case.seed.get('members', {}))} shoppers with a customer id; "
        f"{case.requests} requests counted, {case.members_share:.0%} signed in, the rest guests"
    )
    print(
        f"  latency from due time   p50 {case.p50_ms:6.1f} ms  p90 {case.p90_ms:6.1f}  "
        f"p99 {case.p99_ms:6.1f}  p99.9 {case.p999_ms:6.1f}  max {case.max_ms:6.1f}"
    )
    print(
        f"  p99 < {TARGET_P99_MS:.0f} ms at {TARGET_RATE:.0f}/s: {case.p99_ms:.1f} ms at "
        f"{case.rate:.0f}/s   {_verdict(case)}"
    )
    if case.saturated:
        print(
            f"  SATURATED: the server did not keep up with {case.rate:.0f}/s (requests timed "
            f"out after {case.timeout:.0f} s or were never sent); latencies are bounded by the "
            "timeout, and CPU per answer below includes work on abandoned requests"
        )
    print(
        f"  p99 signed in {case.member_p99_ms:.1f} ms, guests {case.guest_p99_ms:.1f} ms; "
        f"from actual send: p50 {case.service_p50_ms:.1f} ms, p99 {case.service_p99_ms:.1f} ms"
    )
    errors = ", ".join(f"{k} x{v}" for k, v in case.errors.items()) or "none"
    print(f"  answers: {case.ok} good, errors: {errors}")
    print(
        f"  generator: sent {case.sent_rate:.1f}/s (asked {case.rate:.0f}/s), answered "
        f"{case.answered_rate:.1f}/s; sends late p50 {case.late_p50_ms:.2f} ms, "
        f"p99 {case.late_p99_ms:.2f} ms, max {case.late_max_ms:.1f} ms; connections opened "
        f"{case.connections_opened}, peak open {case.connections_peak}"
    )
    if case.cpu_cores:
        parts = ", ".join(f"{k} {v:.2f}" for k, v in case.cpu_cores.items())
        print(f"  CPU cores busy (of {os.cpu_count()}): {parts}")
        if case.cpu_ms_per_answer:
            per = ", ".join(f"{k} {v:.2f} ms" for k, v in case.cpu_ms_per_answer.items())
            server = case.cpu_ms_per_answer.get("server", 0.0)
            ceiling = f"; one server process tops out near {1000 / server:.0f}/s" if server else ""
            print(f"  CPU per answer: {per}{ceiling}")
        if case.cpu_cores.get("other", 0.0) > 0.3:
            print(f"  WARNING: other processes took {case.cpu_cores['other']:.2f} cores of "
                  f"{os.cpu_count()} during the run; the figures above are "
                  "pessimistic")  # fmt: skip
    for label, info in case.sql.items() if details else ():
        print(
            f"  SQL per request ({label}, in process): {info['statements_per_request']:.1f} "
            f"statements, {info['ms_per_request_in_process']:.2f} ms sequential"
        )
        for item in info["statements"]:
            print(f"      {item['per_request']:.1f} x {item['sql']}")
    if case.pg_backends_seen:
        print(
            f"  PostgreSQL connections from the server: {case.pg_backends_seen} distinct seen, "
            f"at most {case.pg_backends_peak} at once (pool 10 + 10 overflow per worker)"
        )
    if case.py_spy.get("error"):
        print(f"  py-spy failed: {case.py_spy['error']}")
    elif case.py_spy:
        print(f"  py-spy: {case.py_spy['samples']} samples of the server (on CPU); self share "
              "by package:")  # fmt: skip
        print("      " + ", ".join(f"{name} {v:.1f}%" for name, v in case.py_spy["packages_self"]))
        print("  py-spy, Stamp functions with the most samples under them:")
        for frame, share in case.py_spy["inclusive_top"]:
            print(f"      {share:5.1f}%  {frame}")
        print("  py-spy self (leaf) share:")
        for frame, share in case.py_spy["self_top"]:
            print(f"      {share:5.1f}%  {frame}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.widget", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rate", default=str(int(TARGET_RATE)), metavar="R[,R...]",
                        help="arrivals per second; several (comma-separated) run in turn on "
                        "the same server, e.g. 100,200,300")  # fmt: skip
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds sent, not counted")
    parser.add_argument("--db", choices=("postgresql", "sqlite", "both"), default="both")
    parser.add_argument("--guests", type=float, default=0.2, help="share of guest requests")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help="wait up to S seconds for the machine to be idle before each run",
    )
    parser.add_argument("--quiet", type=float, default=0.3, metavar="CORES",
                        help="idle means other processes use under CORES cores")  # fmt: skip
    parser.add_argument("--py-spy", default=None, metavar="PATH", help="py-spy binary")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    if args.warmup + args.duration > MAX_SIGNED_SECONDS:
        parser.error(f"--warmup + --duration must stay under {MAX_SIGNED_SECONDS} s "
                     "(pre-signed timestamps are valid for 600 s)")  # fmt: skip
    try:
        args.rates = sorted(float(rate) for rate in str(args.rate).split(",") if rate.strip())
    except ValueError:
        parser.error("--rate takes numbers, e.g. 300 or 100,200,300")
    if not args.rates or min(args.rates) <= 0 or args.duration <= 0:
        parser.error("--rate and --duration must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def _terminate(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminate)
    started = datetime.now(UTC)
    print(f"Stamp widget benchmark, {started:%Y-%m-%d %H:%M} UTC, {platform.node()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}")  # fmt: skip
    sizes = asset_sizes()
    print_sizes(sizes)
    kinds = ["postgresql", "sqlite"] if args.db == "both" else [args.db]
    cases: list[Case] = []
    with tempfile.TemporaryDirectory(prefix="stamp-bench-widget-") as tmp:
        for kind in kinds:
            results = run_cases(kind, args, Path(tmp))
            for index, case in enumerate(results):
                cases.append(case)
                print_case(case, details=index == len(results) - 1)
    loader_kb = sizes["stamp-loader.js"]["gzip9"] / 1024
    print()
    print("Summary")
    print(f"  loader {loader_kb:.2f} KB gz (target <= {TARGET_LOADER_KB:.0f})   "
          f"{_mark(loader_kb <= TARGET_LOADER_KB)}")  # fmt: skip
    for case in cases:
        figure = "failed" if case.error else f"p50 {case.p50_ms:.1f} ms, p99 {case.p99_ms:.1f} ms"
        print(f"  {LABELS[case.database]:<14} {figure} at {case.rate:.0f}/s (target p99 < "
              f"{TARGET_P99_MS:.0f} ms at {TARGET_RATE:.0f}/s)   {_verdict(case)}"
              + ("  SATURATED" if case.saturated and not case.error else ""))  # fmt: skip
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "started": started.isoformat(),
                    "cores": os.cpu_count(),
                    "assets": sizes,
                    "targets": {
                        "loader_kb_gz": TARGET_LOADER_KB,
                        "p99_ms": TARGET_P99_MS,
                        "rate": TARGET_RATE,
                    },  # fmt: skip
                    "cases": [asdict(case) for case in cases],
                },
                indent=2,
                default=str,
            )
        )
    return 0 if all(case.error is None for case in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
