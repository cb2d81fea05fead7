"""`stamp demo`: migrate, serve, seed the demo shop over HTTP, and say what to try.

One process, like `stamp serve`: uvicorn on host:port and an in-process Huey consumer. The
seed runs once `/healthz` answers, as signed webhooks to the running server, so a demo
shows exactly what a real shop's deliveries would do. Ctrl-C stops the server, then the
consumer.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

import httpx
import typer
from rich.console import Console
from sqlalchemy.engine import make_url

from app.demo import DEMO_SHOP
from app.settings import ConfigurationError, Settings, get_settings

if TYPE_CHECKING:
    import uvicorn

    from app.demo.seed import SeedResult

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)

READY_TIMEOUT_SECONDS = 30.0
CONSUMER_WORKERS = 2


class DemoRefused(RuntimeError):
    """The environment is one the demo must not touch (production)."""


def connect_host(host: str) -> str:
    """The address to reach a server bound to `host` (a wildcard bind is reached on loopback)."""
    if host in {"", "0.0.0.0"}:
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def prepare_environment(host: str, port: int) -> str:
    """Point this process's settings at the demo; return the server's base URL.

    Sets DEMO_MODE, APP_URL and SHOPIFY_ADMIN_URL (the local stand-in), and STAMP_ENV=dev
    with the default SQLite DATABASE_URL / QUEUE_URL unless the environment or `.env` sets
    them. Refuses a production environment, so demo data never lands in a real database.
    """
    try:
        current = Settings()
    except ConfigurationError as exc:
        raise DemoRefused("stamp demo does not run with STAMP_ENV=production") from exc
    if current.is_production:
        raise DemoRefused("stamp demo does not run with STAMP_ENV=production")
    defaults = {
        "STAMP_ENV": "dev",
        "DATABASE_URL": str(Settings.model_fields["DATABASE_URL"].default),
        "QUEUE_URL": str(Settings.model_fields["QUEUE_URL"].default),
    }
    for name, value in defaults.items():
        if name not in current.model_fields_set:
            os.environ[name] = value
    base_url = f"http://{connect_host(host)}:{port}"
    os.environ["DEMO_MODE"] = "1"
    os.environ["APP_URL"] = base_url
    os.environ["SHOPIFY_ADMIN_URL"] = base_url + "/demo/shopify-admin/{shop}"
    get_settings.cache_clear()
    return base_url


async def wait_until_healthy(client: httpx.AsyncClient, serving: asyncio.Task[None]) -> None:
    """Poll `/healthz` until it answers 200; give up if the server stops first."""
    while not serving.done():
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the server stopped before it was ready")


async def seed_running_server(
    settings: Settings, base_url: str, serving: asyncio.Task[None]
) -> SeedResult:
    """Once the server is healthy, seed it over HTTP exactly as Shopify would deliver."""
    from app.demo.seed import seed
    from app.state import State

    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await wait_until_healthy(client, serving)
        state = State.create(settings)
        try:
            return await seed(client, state)
        finally:
            await state.aclose()


def _banner(settings: Settings, base_url: str, result: SeedResult) -> None:
    from app.demo.seed import CUSTOMERS, ORDERS

    database = make_url(settings.DATABASE_URL).render_as_string(hide_password=True)
    console.print()
    console.print("[bold]Stamp demo is running[/bold] (local stand-ins only; not a real shop)")
    console.print(f"  Storefront  [link]{base_url}/demo[/link]")
    console.print(f"  Admin       [link]{base_url}/demo/admin[/link]")
    console.print(f"  Shopify     {base_url}/demo/shopify-admin/{DEMO_SHOP} (stand-in)")
    console.print(f"  Database    {database}")
    console.print(
        f"Seeded {len(CUSTOMERS)} shoppers and {len(ORDERS)} orders as {result.total} signed "
        f"webhooks to /webhooks/shopify ({result.processed} new, {result.duplicate} already "
        "delivered)."
    )
    console.print("Try:")
    console.print("  • Pick Ada Lovelace (Silver, ×1.25) and place a 40.00 order: +50 points.")
    console.print("  • Grace Hopper is Gold after a partial refund; Alan Turing's order #1011")
    console.print("    was cancelled and its points reversed.")
    console.print("  • Run `stamp demo` again: every webhook is a duplicate, nothing doubles.")
    console.print("Press Ctrl-C to stop.")


async def serve_and_seed(server: uvicorn.Server, settings: Settings, base_url: str) -> bool:
    """Serve until stopped; seed once ready. False if seeding failed (the server stops)."""
    serving = asyncio.create_task(server.serve())
    seeding = asyncio.create_task(seed_running_server(settings, base_url, serving))
    ok = True
    try:
        await asyncio.wait({serving, seeding}, return_when=asyncio.FIRST_COMPLETED)
        if seeding.done() and not seeding.cancelled():
            error = seeding.exception()
            if error is None:
                _banner(settings, base_url, seeding.result())
            else:
                err.print(f"[red]Seeding the demo failed: {error}[/red]")
                server.should_exit = True
                ok = False
        await serving
    finally:
        seeding.cancel()
        await asyncio.gather(seeding, return_exceptions=True)
    return ok


def demo(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the demo until Ctrl-C: migrate, serve with a job consumer, seed, print a banner."""
    try:
        base_url = prepare_environment(host, port)
    except DemoRefused as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(code=2) from exc
    settings = get_settings()

    import uvicorn

    from app import migrate
    from app.jobs import load_tasks
    from app.main import create_app
    from app.queue import huey

    console.print("Bringing the database up to date…")
    migrate.upgrade(settings.DATABASE_URL)
    load_tasks()
    consumer = huey.create_consumer(workers=CONSUMER_WORKERS, worker_type="thread", periodic=True)
    consumer.start()
    config = uvicorn.Config(
        create_app(settings), host=host, port=port, log_level="warning", lifespan="on"
    )
    ok = True
    try:
        ok = asyncio.run(serve_and_seed(uvicorn.Server(config), settings, base_url))
    except KeyboardInterrupt:
        pass
    except SystemExit as exc:
        if exc.code:
            err.print(f"[red]The server could not start on {host}:{port}.[/red]")
            ok = False
    finally:
        consumer.stop(graceful=True)
    console.print("Demo stopped.")
    if not ok:
        raise typer.Exit(code=1)
