"""Throwaway infrastructure for the scale test, the soak and the fault scenarios.

Everything here is started fresh on free ports and torn down on the way out, failures
included: our own `redis-server`, optionally our own PostgreSQL cluster (initdb into a
temporary directory, run as the `postgres` user because initdb refuses root), databases
on the machine's PostgreSQL, and `scripts/scale.sh` in its own process group. The
machine's shared PostgreSQL (5432) and Redis (6379) are never stopped or restarted.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
SHARED_POSTGRES = f"postgresql://postgres@{HOST}:5432"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
SHOP_DOMAIN = "scale-harbour-pine.myshopify.com"
SECRET = "scale-shopify-secret-0123456789abcdef"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for(check: Any, what: str, timeout: float = 30.0, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:  # not up yet, whatever the reason
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready within {timeout:.0f} s")
        time.sleep(interval)


def rss_kb(pid: int) -> int:
    """Resident memory of one process (VmRSS), 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in _children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def stop_group(process: subprocess.Popen[Any], grace: float = 15.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


# --- Redis -----------------------------------------------------------------------------


@dataclass
class RedisServer:
    """Our own redis-server on a free port, no persistence; stop() and start() at will."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", HOST, "--save", "",
             "--appendonly", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        wait_for(self.ping, f"redis-server on port {self.port}")

    def ping(self) -> bool:
        with socket.create_connection((HOST, self.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process, grace=5)
            self.process = None


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- PostgreSQL ------------------------------------------------------------------------


async def admin(server_url: str, statement: str) -> None:
    """One statement on the server's `postgres` database (CREATE or DROP DATABASE)."""
    import asyncpg

    connection = await asyncpg.connect(server_url + "/postgres")
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def database(server_url: str = SHARED_POSTGRES) -> Iterator[str]:
    """A fresh, empty database on `server_url`, dropped afterwards."""
    name = f"stamp_scale_{uuid.uuid4().hex[:12]}"
    asyncio.run(admin(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield f"{server_url}/{name}"
    finally:
        with suppress(Exception):
            asyncio.run(admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _as_postgres(command: list[str]) -> list[str]:
    return command if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *command]


@dataclass
class PostgresCluster:
    """A throwaway PostgreSQL 15 cluster in a temporary directory, on a free port."""

    directory: Path
    port: int = field(default_factory=free_port)

    @property
    def server_url(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}"

    def _pg_ctl(self, *arguments: str) -> None:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.directory / "data"), *arguments]),
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

    def init(self) -> None:
        subprocess.run(
            _as_postgres([str(PG_BIN / "initdb"), "-D", str(self.directory / "data"),
                          "-U", "postgres", "-A", "trust", "--no-sync"]),
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses={HOST} -c fsync=off "
            "-c max_connections=200"
        )
        self._pg_ctl("-o", options, "-l", str(self.directory / "postgres.log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-m", mode, "-w", "stop")

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop (fast: every connection is cut), stay down a while, start again."""
        self.stop("fast")
        time.sleep(down_seconds)
        self.start()


@contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    directory = Path(tempfile.mkdtemp(prefix="stamp-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    cluster = PostgresCluster(directory)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        with suppress(Exception):
            cluster.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)


# --- Stamp -----------------------------------------------------------------------------


def stamp_env(database_url: str, queue_url: str, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PROMETHEUS_", "PYTEST_"))
    }
    env.update(
        {
            "STAMP_ENV": "dev",
            "DATABASE_URL": database_url,
            "QUEUE_URL": queue_url,
            "SECRET_KEY": "scale-secret-key-0123456789abcdef0123456789",
            "SHOPIFY_API_KEY": "scale-api-key",
            "SHOPIFY_API_SECRET": SECRET,
            "APP_URL": "https://stamp.scale.test",
            "LOG_FORMAT": "json",
            "ACCESS_LOG": "false",
            "PYTHON": sys.executable,
        }
    )
    env.update(extra)
    return env


def python(env: dict[str, str], *arguments: str, timeout: float = 120) -> str:
    """Run `python <arguments>` from the repository (the code on disk now); its stdout."""
    done = subprocess.run(
        [sys.executable, *arguments], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{arguments} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def prepare(env: dict[str, str]) -> int:
    """Migrate and seed an installed shop with the default program; its id."""
    import json

    python(env, "-m", "app.cli", "migrate")
    output = python(env, "-m", "bench.dbtasks", "seed", env["DATABASE_URL"], SHOP_DOMAIN)
    return int(json.loads(output.strip().splitlines()[-1])["shop_id"])


@dataclass
class Deployment:
    """`scripts/scale.sh` running: web processes on `port`, job workers."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def pids(self, role: str) -> list[int]:
        """`web` (the processes serving HTTP) or `worker` (job consumers)."""
        found = {pid: cmdline(pid) for pid in descendants(self.process.pid)}
        if role == "worker":
            return sorted(pid for pid, line in found.items() if "app.cli worker" in line)
        spawned = sorted(pid for pid, line in found.items() if "spawn_main" in line)
        return spawned or sorted(pid for pid, line in found.items() if "app.cli serve" in line)

    def rss(self) -> dict[str, int]:
        """RSS in kB of every Stamp process, keyed `role:pid`."""
        return {
            f"{role}:{pid}": rss_kb(pid) for role in ("web", "worker") for pid in self.pids(role)
        }

    def ready(self) -> bool:
        with urllib.request.urlopen(self.base_url + "/healthz", timeout=2) as answer:
            return bool(answer.status == 200)


@contextmanager
def deployment(
    env: dict[str, str], workdir: Path, web: int, workers: int, threads: int = 2
) -> Iterator[Deployment]:
    port = free_port()
    log = workdir / f"scale-{port}.log"
    run_env = env | {
        "WEB": str(web),
        "WORKERS": str(workers),
        "THREADS": str(threads),
        "PORT": str(port),
        "MIGRATE": "0",  # prepare() did
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / f"metrics-{port}"),
    }
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            ["bash", str(ROOT / "scripts" / "scale.sh")], env=run_env, cwd=ROOT,
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    running = Deployment(process, port, log)
    try:

        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"scale.sh exited with {process.returncode}: {log.read_text()}")
            return (
                running.ready()
                and len(running.pids("worker")) >= workers
                and len(running.pids("web")) >= web
            )

        deadline = time.monotonic() + 180
        while True:
            try:
                if up():
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"scale.sh not ready in 180 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        time.sleep(1.0)  # every web process, not just the first, finishes starting
        yield running
    finally:
        stop_group(process)


def task(env: dict[str, str], *arguments: str) -> dict[str, Any]:
    """`python -m bench.scaletasks ...` with Stamp's env; its JSON answer."""
    import json

    output = python(env, "-m", "bench.scaletasks", *arguments)
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def settle_klaviyo(env: dict[str, str], shop_id: int, timeout: float = 120.0) -> dict[str, Any]:
    """Wait until the workers sent every profile and event and the queue is empty."""
    deadline = time.monotonic() + timeout
    while True:
        state = task(env, "backlog", str(shop_id))
        if state == {"profiles": 0, "events": 0, "leased": False, "queue": 0}:
            return state
        if time.monotonic() > deadline:
            raise RuntimeError(f"Klaviyo backlog not drained in {timeout:.0f} s: {state}")
        time.sleep(1.0)
