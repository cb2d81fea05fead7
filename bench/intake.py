"""Webhook intake benchmark: signed `orders/paid` over HTTP to a real uvicorn server.

    .venv/bin/python -m bench.intake [--orders N] [--concurrency 64] [--duration S]
                                     [--db postgresql|sqlite|both] [--workers 1,2]
                                     [--json out.json]

For each database and uvicorn worker count: create a fresh database, migrate it, seed
an installed shop, start uvicorn, then with wrk (pre-signed requests, bench/wrk_orders.lua)
1. warm up with 256 extra orders (this also measures the rate used to size step 3),
2. load the bare endpoint (`/webhooks/bench/bare`: read the body, check the HMAC, 200)
   with the same bodies for --bare-duration seconds,
3. send distinct orders, each exactly once, to `/webhooks/shopify`: as many as the
   warm-up rate gets through in about --duration seconds, at least --min-orders and at
   most --orders; wrk is stopped once every one has its answer,
then stop the server and check the database: one ledger earn entry and one delivery row
per order acknowledged as processed, and no balance drift (`app.ledger.engine.verify`).
Prints each figure with its target and `met` or `MISSED`, plus the CPU each order cost
and how much CPU other processes took meanwhile (a shared machine makes figures low).
No assertions: a benchmark reports, it does not test. Only 127.0.0.1 is ever contacted;
databases, files and processes are removed on the way out, failures included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import cpu
from bench.payloads import SignedRequest, signed_orders, write_manifest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LUA = Path(__file__).resolve().parent / "wrk_orders.lua"
HOST = "127.0.0.1"
PG_SERVER = f"postgresql://postgres@{HOST}:5432"
SHOP_DOMAIN = "bench-harbour-pine.myshopify.com"
SECRET = "bench-shopify-secret-" + "0123456789abcdef"
WARMUP_ORDERS = 256
TARGET_ORDERS_PER_S = 1000.0
TARGET_P99_MS = 250.0


@dataclass(slots=True)
class WrkRun:
    """What one wrk run measured (text output and the Lua counters)."""

    label: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: dict[str, int]
    counters: dict[str, float]
    completed: bool
    usage: cpu.Usage | None = None
    output: str = ""

    @property
    def seconds(self) -> float:
        return self.counters["duration_us"] / 1e6

    @property
    def processed_per_s(self) -> float:
        return self.counters["processed"] / self.seconds if self.seconds else 0.0


@dataclass(slots=True)
class Case:
    """One database and worker count: warm-up, bare and intake runs, then the checks."""

    database: str
    workers: int
    warmup: WrkRun | None = None
    bare: WrkRun | None = None
    intake: WrkRun | None = None
    checks: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    analyze_runs: int | None = None  # ANALYZEs run by the bench (autovacuum off), else None


# --- databases -------------------------------------------------------------------------


@asynccontextmanager
async def _pg_connection(database: str = "postgres") -> AsyncIterator[Any]:
    """An asyncpg connection to the local server as `postgres`, closed on the way out."""
    import asyncpg

    connection = await asyncpg.connect(host=HOST, port=5432, user="postgres", database=database)
    try:
        yield connection
    finally:
        await connection.close()


async def _pg_admin(statement: str) -> None:
    async with _pg_connection() as connection:
        await connection.execute(statement)


def create_database(kind: str, workdir: Path) -> tuple[str, str]:
    """A fresh database: (DATABASE_URL, name to drop)."""
    if kind == "postgresql":
        name = f"stamp_bench_{uuid.uuid4().hex[:12]}"
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
        return f"{PG_SERVER}/{name}", name
    path = workdir / f"stamp_bench_{uuid.uuid4().hex[:12]}.db"
    return f"sqlite:///{path}", str(path)


def drop_database(kind: str, name: str) -> None:
    if kind == "postgresql":
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        return
    for suffix in ("", "-wal", "-shm"):
        Path(name + suffix).unlink(missing_ok=True)


def migrate(env: dict[str, str], database_url: str) -> None:
    code = "import sys; from app import migrate; migrate.upgrade(sys.argv[1])"
    subprocess.run(
        [str(BIN / "python"), "-c", code, database_url],
        env=env,
        cwd=ROOT,
        check=True,
        timeout=120,
        capture_output=True,
    )


def db_task(env: dict[str, str], *arguments: str) -> dict[str, Any]:
    """Run `bench.dbtasks` in a fresh process (the app code as it is on disk now)."""
    done = subprocess.run(
        [str(BIN / "python"), "-m", "bench.dbtasks", *arguments],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.dbtasks {arguments[0]} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def _autovacuum_is_on() -> bool:
    async with _pg_connection() as connection:
        return bool(await connection.fetchval("SELECT current_setting('autovacuum') = 'on'"))


# Autovacuum's own rule: analyze a table once the rows changed since its last analyze pass
# autovacuum_analyze_threshold + autovacuum_analyze_scale_factor x its row count.
_STALE_TABLES = """
SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
WHERE s.n_mod_since_analyze > current_setting('autovacuum_analyze_threshold')::float8
    + current_setting('autovacuum_analyze_scale_factor')::float8 * greatest(c.reltuples, 0)
"""


@dataclass(slots=True)
class AutoAnalyze:
    """Stands in for autovacuum's analyze on a server that runs without it.

    PostgreSQL enables autovacuum by default and any production server runs it; the one
    on this machine has it off. Without it the planner never learns that the tables grew
    from empty, keeps the plans it chose for a few rows (a sequential scan of `orders` to
    find 30 order ids), and each batch costs more than the last. This applies
    autovacuum's rule (see `_STALE_TABLES`), checked every `interval` seconds instead of
    every `autovacuum_naptime` (1 min): the run lasts about 30 s, in which the tables grow
    about 25-fold, as much as months of a shop's orders. Its ANALYZEs run on the
    benchmark database, so their CPU counts as PostgreSQL's. `--no-autoanalyze` turns
    it off.
    """

    database: str
    interval: float = 1.0
    runs: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> AutoAnalyze:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._loop()), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    async def _loop(self) -> None:
        async with _pg_connection(self.database) as connection:
            while not self._stop.wait(self.interval):
                for (table,) in await connection.fetch(_STALE_TABLES):
                    await connection.execute(f'ANALYZE "{table}"')
                    self.runs += 1


@contextmanager
def planner_statistics(
    kind: str, name: str, args: argparse.Namespace
) -> Iterator[AutoAnalyze | None]:
    """An `AutoAnalyze` for PostgreSQL running without autovacuum, else nothing."""
    if kind != "postgresql" or args.no_autoanalyze or asyncio.run(_autovacuum_is_on()):
        yield None
        return
    with AutoAnalyze(name) as analyze:
        yield analyze


# --- server ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _stop_group(process: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=5)


@contextmanager
def uvicorn_server(env: dict[str, str], workers: int, log: Path) -> Iterator[tuple[str, int]]:
    """uvicorn (uvloop, httptools) in its own process group; yields (base URL, group id)."""
    port = free_port()
    command = [
        str(BIN / "uvicorn"), "app.main:app", "--host", HOST, "--port", str(port),
        "--log-level", "warning", "--no-access-log", "--loop", "uvloop", "--http", "httptools",
        "--workers", str(workers),
        # wrk's connections sit idle once their share of orders is done; the default 5 s
        # keep-alive would close them and wrk would count read errors that are not real.
        "--timeout-keep-alive", "300",
    ]  # fmt: skip
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    base = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {process.returncode}; see {log}")
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not answer /healthz within 30 s; see {log}")
            time.sleep(0.1)
        if workers > 1:
            time.sleep(1.0)  # let every worker finish its start-up, not just the first
        yield base, process.pid
    finally:
        _stop_group(process)


# --- wrk -------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if not match:
        raise ValueError(f"unreadable wrk latency {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests/s, p50/p99, non-2xx and socket errors from wrk's text, plus the Lua line."""
    parsed: dict[str, Any] = {"non_2xx": 0, "socket_errors": {}}
    if match := re.search(r"Requests/sec:\s+([\d.]+)", output):
        parsed["requests_per_s"] = float(match.group(1))
    for percent in ("50", "99"):
        if match := re.search(rf"^\s+{percent}%\s+(\S+)", output, re.MULTILINE):
            parsed[f"p{percent}_ms"] = _ms(match.group(1))
    if match := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output):
        parsed["non_2xx"] = int(match.group(1))
    if match := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        names = ("connect", "read", "write", "timeout")
        parsed["socket_errors"] = dict(zip(names, map(int, match.groups()), strict=True))
    if match := re.search(r"^BENCH_JSON (\{.*\})$", output, re.MULTILINE):
        parsed["counters"] = json.loads(match.group(1))
    return parsed


def _cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def run_wrk(
    label: str,
    url: str,
    manifest: Path,
    *,
    mode: str,
    duration: int,
    connections: int,
    threads: int,
    workdir: Path,
    limit: int | None = None,
    server_group: int | None = None,
    database: str | None = None,
) -> WrkRun:
    """One wrk run over the first `limit` requests of `manifest`.

    In "once" mode wrk is stopped (SIGINT) as soon as every request has its answer, so
    the run covers exactly those requests and `duration` is only a cap. The machine's CPU
    is read before and after, to tell how much of it other processes took.
    """
    done_prefix = workdir / f"done-{uuid.uuid4().hex[:8]}"
    command = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "60s",
        "--latency", "-s", str(LUA), url, "--", str(manifest), str(threads), mode,
        str(done_prefix), str(limit or ""),
    ]  # fmt: skip
    before, started = cpu.snapshot(), time.monotonic()
    children_before, self_before = _cpu_seconds(resource.RUSAGE_CHILDREN), _cpu_seconds()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    completed = False
    try:
        deadline = time.monotonic() + duration + 120
        while process.poll() is None:
            if mode == "once" and all(
                Path(f"{done_prefix}.{index}").exists() for index in range(threads)
            ):
                completed = True
                process.send_signal(signal.SIGINT)
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"wrk ({label}) did not finish")
            time.sleep(0.01)
        output, _ = process.communicate(timeout=60)
        # wrk has exited (its /proc entry is gone): its CPU is in our children's rusage.
        measured = {
            "wrk": _cpu_seconds(resource.RUSAGE_CHILDREN) - children_before,
            "driver": _cpu_seconds() - self_before,
        }
        groups = {"server": server_group} if server_group else {}
        seconds = time.monotonic() - started
        usage = cpu.usage(before, cpu.snapshot(), seconds, groups, database, measured)
    finally:
        _stop_group(process, grace=5)
        for index in range(threads):
            Path(f"{done_prefix}.{index}").unlink(missing_ok=True)
    parsed = parse_wrk(output)
    if "counters" not in parsed or "requests_per_s" not in parsed:
        raise RuntimeError(f"could not read wrk's output ({label}):\n{output}")
    return WrkRun(
        label=label,
        requests_per_s=parsed["requests_per_s"],
        p50_ms=parsed.get("p50_ms", parsed["counters"]["p50_us"] / 1e3),
        p99_ms=parsed.get("p99_ms", parsed["counters"]["p99_us"] / 1e3),
        non_2xx=parsed["non_2xx"],
        socket_errors=parsed["socket_errors"],
        counters=parsed["counters"],
        completed=completed or mode == "cycle",
        usage=usage,
        output=output,
    )


# --- one case --------------------------------------------------------------------------


def server_env(database_url: str, queue_url: str) -> dict[str, str]:
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    env.update(
        STAMP_ENV="dev",
        DATABASE_URL=database_url,
        QUEUE_URL=queue_url,
        SHOPIFY_API_SECRET=SECRET,
        SHOPIFY_API_KEY="bench-api-key",
        BENCH_ENDPOINTS="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def intake_size(args: argparse.Namespace, warmup: WrkRun) -> int:
    """Distinct orders for the intake run: what the warm-up rate gets through in about
    --duration seconds, at least --min-orders and at most --orders."""
    most, least = int(args.orders), int(args.min_orders)
    estimate = int(warmup.processed_per_s * args.duration)
    return max(min(most, least), min(most, estimate))


def run_case(
    kind: str, workers: int, manifests: dict[str, Path], args: argparse.Namespace, workdir: Path
) -> Case:
    case = Case(database=kind, workers=workers)
    database_url, name = create_database(kind, workdir)
    env = server_env(database_url, f"sqlite:///{workdir}/queue-{uuid.uuid4().hex[:8]}.db")
    log = workdir / f"uvicorn-{kind}-{workers}.log"
    try:
        migrate(env, database_url)
        shop_id = int(db_task(env, "seed", database_url, SHOP_DOMAIN)["shop_id"])
        with (
            planner_statistics(kind, name, args) as analyze,
            uvicorn_server(env, workers, log) as (base, group),
        ):
            wrk: dict[str, Any] = {
                "connections": args.concurrency,
                "threads": args.threads,
                "workdir": workdir,
                "server_group": group,
                "database": name if kind == "postgresql" else None,
            }
            intake_url, bare_url = base + "/webhooks/shopify", base + "/webhooks/bench/bare"
            print(f"  warm-up: {WARMUP_ORDERS} orders ...", flush=True)
            case.warmup = run_wrk(
                "warm-up", intake_url, manifests["warmup"], mode="once", duration=120, **wrk
            )
            print(f"  bare endpoint: {args.bare_duration} s ...", flush=True)
            case.bare = run_wrk(
                "bare", bare_url, manifests["orders"], mode="cycle",
                duration=args.bare_duration, **wrk,
            )  # fmt: skip
            size = intake_size(args, case.warmup)
            cap = max(4 * args.duration, 120)
            print(
                f"  intake: {size:,} distinct orders (about {args.duration} s at the warm-up "
                f"rate of {case.warmup.processed_per_s:,.0f}/s; cap {cap} s) ...",
                flush=True,
            )
            case.intake = run_wrk(
                "intake", intake_url, manifests["orders"], mode="once", duration=cap,
                limit=size, **wrk,
            )  # fmt: skip
            case.analyze_runs = None if analyze is None else analyze.runs
        # The server is stopped: anything it accepted is committed or rolled back.
        try:
            case.checks = db_task(env, "check", database_url, str(shop_id))
        except Exception as exc:  # the figures above still stand; say why the check failed
            case.checks = {"error": f"{type(exc).__name__}: {exc}"}
        warnings = [line for line in log.read_text().splitlines() if line.strip()]
        case.checks["server_log_lines"] = len(warnings)
        case.checks["server_log_tail"] = warnings[-5:]
    except Exception as exc:
        case.error = f"{type(exc).__name__}: {exc}"
        if log.exists():
            case.error += "\n" + log.read_text()[-3000:]
    finally:
        drop_database(kind, name)
    return case


# --- report ----------------------------------------------------------------------------

LABELS = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}


def _status(met: bool) -> str:
    return "met" if met else "MISSED"


def _load(run: WrkRun) -> str:
    if run.usage is None:
        return "n/a"
    return f"{run.usage.ours:.2f} / {run.usage.other:.2f} of {run.usage.cores}"


def _cpu_per(run: WrkRun, count: float, only: str | None = None) -> str:
    """Server (and PostgreSQL) CPU per request: contention from other processes hardly
    changes it, unlike the throughput."""
    if run.usage is None:
        return "n/a"
    server = f"{run.usage.cpu_ms_per('server', count):.2f}"
    if only == "server":
        return server + " ms"
    return f"{server} + {run.usage.cpu_ms_per('postgres', count):.2f} ms"


def _ceiling(run: WrkRun, count: float, workers: int, database: str) -> str:
    """Orders/s the measured CPU per order would allow if nothing else ran: each uvicorn
    worker is one core at most, and server + PostgreSQL + wrk share all the cores."""
    if run.usage is None or not count:
        return "n/a"
    server = run.usage.cpu_ms_per("server", count)
    roles = ("server", "postgres", "wrk") if database == "postgresql" else ("server", "wrk")
    total = sum(run.usage.cpu_ms_per(role, count) for role in roles)
    if not server or not total:
        return "n/a"
    rate = min(workers * 1000 / server, run.usage.cores * 1000 / total)
    return f"~{rate:,.0f} orders/s"


def case_rows(case: Case) -> list[tuple[str, str, str, str]]:
    """(figure, measured, target, met/MISSED) for one case."""
    assert case.intake is not None
    assert case.bare is not None
    assert case.warmup is not None
    intake, bare, warm = case.intake, case.bare, case.warmup
    orders_per_s = intake.processed_per_s
    ratio = orders_per_s / bare.requests_per_s if bare.requests_per_s else 0.0
    acked = int(warm.counters["processed"] + intake.counters["processed"])
    earn = int(case.checks.get("earn_entries", -1))
    deliveries = int(case.checks.get("deliveries", -1))
    loaded, sent = int(intake.counters["loaded"]), int(intake.counters["sent"])
    processed = int(intake.counters["processed"])
    socket_errors = sum(intake.socket_errors.values())
    dupes, dead = int(intake.counters["duplicate"]), int(intake.counters["dead_letter"])
    drift = case.checks.get("drift_count")
    rows = [
        ("intake orders/s (200 processed)", f"{orders_per_s:,.0f}",
         f">= {TARGET_ORDERS_PER_S:,.0f}", _status(orders_per_s >= TARGET_ORDERS_PER_S)),
        ("intake p50 ack latency", f"{intake.p50_ms:,.1f} ms", "", ""),
        ("intake p99 ack latency", f"{intake.p99_ms:,.1f} ms", f"< {TARGET_P99_MS:.0f} ms",
         _status(intake.p99_ms < TARGET_P99_MS)),
        ("bare req/s (HMAC only)", f"{bare.requests_per_s:,.0f}", "", ""),
        ("bare p50 / p99", f"{bare.p50_ms:,.1f} / {bare.p99_ms:,.1f} ms", "", ""),
        ("ratio intake/bare", f"{ratio:.3f}", "", ""),
        ("distinct orders: loaded / sent / 200", f"{loaded:,} / {sent:,} / {processed:,}",
         "all, once", _status(intake.completed and sent == loaded == processed and dupes == 0)),
        ("non-2xx / socket errors / dead letters",
         f"{intake.non_2xx} / {socket_errors} / {dead}", "0 / 0 / 0",
         _status(intake.non_2xx == 0 and socket_errors == 0 and dead == 0)),
        ("DB earn entries / deliveries vs acked", f"{earn:,} / {deliveries:,} vs {acked:,}",
         "equal", _status(earn == deliveries == acked)),
        ("ledger drift (engine.verify)", f"{drift if drift is not None else '?'} members", "0",
         _status(drift == 0)),
        (
            "CPU per order: uvicorn + PostgreSQL"
            if case.database == "postgresql"
            else "CPU per order: uvicorn (with SQLite)",
            _cpu_per(intake, processed, None if case.database == "postgresql" else "server"),
            "",
            "",
        ),
        ("CPU per bare request: uvicorn", _cpu_per(bare, bare.counters["answered"], "server"),
         "", ""),
        ("ceiling from CPU/order, machine idle",
         _ceiling(intake, processed, case.workers, case.database), "", "estimate"),
        ("cores used: bench / other processes", _load(intake), "other ~0",
         "noisy" if intake.usage and intake.usage.other > 0.2 else "ok"),
    ]  # fmt: skip
    return rows


def print_case(case: Case, mean_body: float, args: argparse.Namespace) -> None:
    title = (
        f"{LABELS[case.database]}, uvicorn --workers {case.workers} "
        f"(wrk -t{args.threads} -c{args.concurrency}, mean body {mean_body / 1024:.1f} KB)"
    )
    print(f"\n=== {title} ===")
    if case.error:
        print(f"FAILED: {case.error}")
        return
    if case.database == "sqlite":
        print("(the targets are set for PostgreSQL; SQLite is shown against them for reference)")
    print(f"{'figure':<40} {'measured':>24}  {'target':<10} status")
    for figure, measured, target, status in case_rows(case):
        print(f"{figure:<40} {measured:>24}  {target:<10} {status}")
    assert case.intake is not None
    if not case.intake.completed:
        print(
            f"note: the intake run hit its {case.intake.seconds:.0f} s cap before every order "
            "was answered; orders in flight at the cut may be committed but not acknowledged."
        )
    if case.analyze_runs is not None:
        print(
            "note: autovacuum is off on this PostgreSQL server (it is on by default and in "
            "production);\n      the bench stood in for its analyze step: "
            f"{case.analyze_runs} ANALYZE runs (see AutoAnalyze; --no-autoanalyze: none)."
        )
    if case.checks.get("error"):
        print(f"database check FAILED: {case.checks['error']}")
    if case.checks.get("server_log_lines"):
        print(f"server log ({case.checks['server_log_lines']} lines), last ones:")
        for line in case.checks["server_log_tail"]:
            print(f"  {line[:160]}")
    if case.intake.usage and case.intake.usage.other > 0.2:
        print(
            f"note: other processes used {case.intake.usage.other:.2f} of "
            f"{case.intake.usage.cores} cores during the intake run: the figures are low."
        )


def print_summary(cases: list[Case]) -> None:
    print("\n=== summary (targets: >= 1,000 orders/s and p99 < 250 ms, on PostgreSQL) ===")
    print(
        f"{'database':<11} {'workers':>7} {'orders/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'bare req/s':>11} {'ratio':>6} {'other cores':>11}  verdict"
    )
    for case in cases:
        if case.error or not case.intake or not case.bare:
            print(f"{LABELS[case.database]:<11} {case.workers:>7}  FAILED")
            continue
        rate = case.intake.processed_per_s
        ratio = rate / case.bare.requests_per_s if case.bare.requests_per_s else 0.0
        met = rate >= TARGET_ORDERS_PER_S and case.intake.p99_ms < TARGET_P99_MS
        other = f"{case.intake.usage.other:.2f}" if case.intake.usage else "n/a"
        print(
            f"{LABELS[case.database]:<11} {case.workers:>7} {rate:>9,.0f} "
            f"{case.intake.p50_ms:>8,.1f} {case.intake.p99_ms:>8,.1f} "
            f"{case.bare.requests_per_s:>11,.0f} {ratio:>6.3f} {other:>11}  "
            f"{'met' if met else 'MISSED'}"
        )


def _jsonable(case: Case) -> dict[str, Any]:
    data = asdict(case)
    for run in ("warmup", "bare", "intake"):
        if data.get(run):
            data[run].pop("output", None)
            wrk_run = getattr(case, run)
            data[run]["processed_per_s"] = wrk_run.processed_per_s
    return data


# --- main ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--orders", type=int, default=20000, help="distinct orders signed (most per intake run)"
    )
    parser.add_argument(
        "--min-orders", type=int, default=1500, help="fewest distinct orders per intake run"
    )
    parser.add_argument("--concurrency", type=int, default=64, help="wrk connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--duration", type=int, default=15, help="seconds each intake run should last"
    )
    parser.add_argument("--bare-duration", type=int, default=8, help="seconds of bare load")
    parser.add_argument("--db", choices=("postgresql", "sqlite", "both"), default="both")
    parser.add_argument("--workers", default="1,2", help="uvicorn worker counts, e.g. 1,2")
    parser.add_argument("--body-bytes", type=int, default=5120, help="smallest body to aim for")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    parser.add_argument(
        "--no-autoanalyze",
        action="store_true",
        help="do not stand in for autovacuum's analyze when the server runs without it",
    )
    return parser.parse_args(argv)


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so every cleanup still runs."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    databases = ["postgresql", "sqlite"] if args.db == "both" else [args.db]
    worker_counts = [int(value) for value in args.workers.split(",") if value.strip()]
    if subprocess.run(["wrk", "-v"], capture_output=True).returncode not in (0, 1):
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    started = time.monotonic()
    cases: list[Case] = []
    with tempfile.TemporaryDirectory(prefix="stamp-bench-") as tmp:
        workdir = Path(tmp)
        print(f"signing {args.orders + WARMUP_ORDERS:,} distinct orders/paid deliveries ...")
        requests = signed_orders(
            WARMUP_ORDERS + args.orders,
            secret=SECRET,
            shop_domain=SHOP_DOMAIN,
            target_bytes=args.body_bytes,
        )
        mean_body = statistics.fmean(len(request.body) for request in requests)
        describe(requests[WARMUP_ORDERS:])
        manifests = {
            "warmup": write_manifest(requests[:WARMUP_ORDERS], workdir, "warmup.tsv"),
            "orders": write_manifest(requests[WARMUP_ORDERS:], workdir, "orders.tsv"),
        }
        del requests
        for kind in databases:
            for workers in worker_counts:
                print(f"\n{LABELS[kind]}, {workers} uvicorn worker(s):", flush=True)
                case = run_case(kind, workers, manifests, args, workdir)
                cases.append(case)
                print_case(case, mean_body, args)
    print_summary(cases)
    print(f"\ntotal {time.monotonic() - started:.0f} s, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    if args.json:
        payload = {
            "date": datetime.now(UTC).isoformat(),
            "mean_body_bytes": mean_body,
            "orders": args.orders,
            "concurrency": args.concurrency,
            "targets": {"orders_per_s": TARGET_ORDERS_PER_S, "p99_ms": TARGET_P99_MS},
            "cases": [_jsonable(case) for case in cases],
        }
        args.json.write_text(json.dumps(payload, indent=2, default=str))
    return 1 if any(case.error for case in cases) else 0


def describe(requests: list[SignedRequest]) -> None:
    sizes = [len(request.body) for request in requests]
    buyers = {request.buyer_key for request in requests}
    print(
        f"{len(requests):,} orders for the measured run: {len(buyers):,} distinct buyers "
        f"({len(buyers) / len(requests):.0%}), body {min(sizes):,}-{max(sizes):,} bytes, "
        f"mean {statistics.fmean(sizes):,.0f}"
    )


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as interrupt:
        print(f"\ninterrupted ({interrupt or 'Ctrl-C'}); servers and databases cleaned up")
        sys.exit(130)
