"""Background jobs on Huey: SQLite storage embedded, Redis at scale (`QUEUE_URL`).

Jobs are enqueued only after the unit of work commits (`enqueue`), carry ids only, and
are thin wrappers: each runs an async function with a `State` on an event loop owned by
the worker thread (one loop and one engine per thread, never a loop per call).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey
from huey.api import Task, TaskWrapper

from app.db import after_commit
from app.settings import Settings, get_settings
from app.state import State

T = TypeVar("T")


def make_huey(settings: Settings, name: str = "stamp") -> Huey:
    url = settings.QUEUE_URL
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey(name, url=url)
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(name, filename=str(path))
    if url == "memory://":
        return MemoryHuey(name)
    raise ValueError(f"QUEUE_URL must be sqlite:///path or redis://..., not {url!r}")


huey = make_huey(get_settings())


def enqueue(task: TaskWrapper, *args: Any) -> None:
    """Send `task(*args)` once the current transaction has committed; dropped on rollback."""
    after_commit(lambda: task(*args))


_local = threading.local()


def run_job(job: Callable[[State], Coroutine[Any, Any, T]]) -> T:
    """Run an async job body on this thread's own loop and State."""
    runner: asyncio.Runner | None = getattr(_local, "runner", None)
    if runner is None:
        runner = asyncio.Runner()
        _local.runner = runner
        _local.state = State.create(get_settings())
    state: State = _local.state
    return runner.run(job(state))


def run_burst(queue: Huey, max_seconds: float = 300.0) -> int:
    """Run every task that is due now, then return how many ran (`stamp worker --burst`)."""
    deadline = time.monotonic() + max_seconds
    for scheduled in queue.read_schedule():
        queue.enqueue(scheduled)
    executed = 0
    while time.monotonic() < deadline:
        task: Task | None = queue.dequeue()
        if task is None:
            break
        queue.execute(task)
        executed += 1
    return executed
