"""Test harness: every database test runs on SQLite and on the real PostgreSQL.

Services come from the environment (`TEST_POSTGRES_URL`, `TEST_REDIS_URL`, defaulting to
the ones on this machine). Outside CI a missing service skips its tests with a visible
reason; with `CI=true` it is a failure, never a skip.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator

_TMP = tempfile.mkdtemp(prefix="stamp-tests-")
os.environ.update(
    {
        "STAMP_ENV": "test",
        "SECRET_KEY": "test-secret-key-0123456789abcdef0123456789",
        "SHOPIFY_API_KEY": "test-api-key",
        "SHOPIFY_API_SECRET": "test-shopify-secret-0123456789abcdef0123",
        "APP_URL": "https://stamp.test",
        "DATABASE_URL": f"sqlite:///{_TMP}/default.db",
        "QUEUE_URL": f"sqlite:///{_TMP}/queue.db",
        "SHOPIFY_ADMIN_URL": "https://{shop}",
    }
)

import httpx  # noqa: E402
import hypothesis  # noqa: E402
import pytest  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine  # noqa: E402
from starlette.applications import Starlette  # noqa: E402

from app import migrate  # noqa: E402
from app.models import Base  # noqa: E402
from app.settings import Settings, async_database_url  # noqa: E402
from app.state import State  # noqa: E402

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# Property tests draw new examples on every run outside CI (that is how they find bugs:
# tests/ledger/test_batch.py found one this way); CI replays a fixed draw, so a red build
# is always the change's doing, never the luck of the draw.
hypothesis.settings.register_profile("ci", derandomize=True)
if IN_CI:
    hypothesis.settings.load_profile("ci")


def service_missing(what: str, error: BaseException) -> None:
    """A missing service fails the run in CI and skips, visibly, elsewhere."""
    message = f"{what} is not reachable ({type(error).__name__}: {error})"
    if IN_CI:
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked for one database is not generated for the other (deselected, not skipped)."""
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        backend = getattr(item, "callspec", None) and item.callspec.params.get("database_url")
        if (backend == "postgresql" and item.get_closest_marker("sqlite_only")) or (
            backend == "sqlite" and item.get_closest_marker("postgres_only")
        ):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


async def _create_postgres_database() -> str:
    name = f"stamp_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(async_database_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    base = POSTGRES_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


async def _drop_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_async_engine(async_database_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A migrated database of each kind, created for this run and dropped after it."""
    if request.param == "sqlite":
        url = f"sqlite:///{_TMP}/stamp-{uuid.uuid4().hex[:8]}.db"
        await _run_migrations(url)
        yield url
        return
    try:
        url = await _create_postgres_database()
    except (OSError, Exception) as exc:
        service_missing("PostgreSQL at " + POSTGRES_URL, exc)
        raise
    try:
        await _run_migrations(url)
        yield url
    finally:
        await _drop_postgres_database(url)


async def _run_migrations(url: str) -> None:
    import asyncio

    await asyncio.to_thread(migrate.upgrade, url)


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {"DATABASE_URL": database_url}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
async def state(settings: Settings) -> AsyncIterator[State]:
    """A fresh State on the test database; every table is emptied afterwards."""
    app_state = State.create(settings)
    try:
        yield app_state
    finally:
        await _empty_tables(app_state)
        await app_state.aclose()


async def _empty_tables(app_state: State) -> None:
    tables = [table.name for table in reversed(Base.metadata.sorted_tables)]
    async with app_state.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                await connection.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
async def session(state: State) -> AsyncIterator[AsyncSession]:
    """A plain session for arranging and inspecting data; commit explicitly."""
    async with state.sessionmaker() as db_session:
        yield db_session


@pytest.fixture
def app(state: State) -> Starlette:
    """The real ASGI app built from the test's settings."""
    from app.main import create_app

    return create_app(state.settings)


@pytest.fixture
async def client(app: Starlette, state: State) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client speaking ASGI to the app, with the lifespan state in every request."""
    # ASGITransport does not run the lifespan, so hand every request the test's State.
    transport = httpx.ASGITransport(app=_with_state(app, state))
    async with httpx.AsyncClient(transport=transport, base_url="https://stamp.test") as http:
        yield http


def _with_state(application: Starlette, app_state: State):  # type: ignore[no-untyped-def]
    async def asgi(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] in {"http", "websocket"}:
            scope = dict(scope)
            scope["state"] = {"stamp": app_state}
        await application(scope, receive, send)

    return asgi


@pytest.fixture
def queue() -> Iterator[object]:
    """The app's Huey queue, emptied before and after the test."""
    from app.queue import huey

    huey.flush()
    yield huey
    huey.flush()
