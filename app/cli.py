"""`stamp`: run, operate and inspect Stamp from a terminal."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from app.settings import get_settings
from app.state import State

T = TypeVar("T")

cli = typer.Typer(help="Stamp: loyalty, referrals and win-back for Shopify and WooCommerce.")
apikey_cli = typer.Typer(help="Headless API keys.")
webhooks_cli = typer.Typer(help="Webhook intake: dead letters and retention.")
ledger_cli = typer.Typer(help="The points ledger.")
cli.add_typer(apikey_cli, name="apikey")
cli.add_typer(webhooks_cli, name="webhooks")
cli.add_typer(ledger_cli, name="ledger")


def _mount_subcommands() -> None:
    from app.admin.cli import admin_cli
    from app.imports.cli import import_cli
    from app.integrations.connect_cli import connect_cli
    from app.winback.cli import winback_cli

    cli.add_typer(admin_cli, name="admin")
    cli.add_typer(import_cli, name="import")
    cli.add_typer(connect_cli, name="connect")
    cli.add_typer(winback_cli, name="winback")


_mount_subcommands()

console = Console()
err = Console(stderr=True)

ShopOption = Annotated[str, typer.Option("--shop", help="The shop's domain, e.g. x.myshopify.com")]


def run_with_state(body: Callable[[State], Awaitable[T]]) -> T:
    async def runner() -> T:
        state = State.create(get_settings())
        try:
            return await body(state)
        finally:
            await state.aclose()

    return asyncio.run(runner())


async def _shop_or_exit(state: State, domain: str):  # type: ignore[no-untyped-def]
    from app.shops.repository import ShopRepository

    async with state.sessionmaker() as session:
        shop = await ShopRepository(session).get_by_domain(domain)
    if shop is None:
        err.print(f"[red]No shop {domain!r} is known to Stamp.[/red]")
        raise typer.Exit(code=2)
    return shop


@cli.command()
def migrate() -> None:
    """Bring the database schema up to date (SQLite or PostgreSQL)."""
    from app import migrate as migrations

    migrations.upgrade()
    console.print("Database is up to date.")


@cli.command()
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[int, typer.Option(help="In-process job threads (0: none)")] = 2,
    web_processes: Annotated[int, typer.Option("--web-processes")] = 1,
    healthcheck_timeout: Annotated[
        int, typer.Option(help="Seconds a web process may take to answer uvicorn's ping")
    ] = 30,
) -> None:
    """Serve the web app, with an in-process job consumer for the embedded default.

    With several web processes, metrics are shared through PROMETHEUS_MULTIPROC_DIR (a
    fresh temporary directory unless the operator set one), so any process answers
    /metrics for all of them.
    """
    import os
    import tempfile

    import uvicorn

    from app.jobs import load_tasks
    from app.observability.logs import configure_logging, logging_config

    if web_processes > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="stamp-metrics-")
    settings = get_settings()
    configure_logging(settings)
    from app.queue import huey

    consumer = None
    if workers > 0:
        load_tasks()
        consumer = huey.create_consumer(workers=workers, worker_type="thread", periodic=True)
        consumer.start()
    try:
        uvicorn.run(
            "app.main:app",
            host=host,
            port=port,
            workers=web_processes if web_processes > 1 else None,
            log_config=logging_config(settings),
            access_log=False,
            proxy_headers=True,
            # uvicorn's 5 s default kills a process still starting on a busy box, and its
            # replacement, and so on; 30 s still replaces a hung process.
            timeout_worker_healthcheck=healthcheck_timeout,
        )
    finally:
        if consumer is not None:
            consumer.stop(graceful=True)


@cli.command()
def demo(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Run an offline demo shop: seeded members, a storefront and a Shopify Admin stand-in."""
    from app.demo.cli import demo as run_demo

    run_demo(host, port)


@cli.command()
def worker(
    workers: Annotated[int, typer.Option(help="Job threads")] = 4,
    burst: Annotated[bool, typer.Option(help="Run everything due, then exit")] = False,
    periodic: Annotated[
        bool, typer.Option(help="Also schedule the periodic jobs (one worker is enough)")
    ] = True,
) -> None:
    """Run job consumers (Redis or SQLite queue, per QUEUE_URL)."""
    from app.jobs import load_tasks
    from app.observability.logs import configure_logging

    configure_logging(get_settings())
    from app.queue import huey, run_burst

    load_tasks()
    if burst:
        executed = run_burst(huey)
        console.print(f"Ran {executed} job(s).")
        return
    consumer = huey.create_consumer(workers=workers, worker_type="thread", periodic=periodic)
    consumer.run()


@apikey_cli.command("create")
def apikey_create(
    shop: ShopOption, name: Annotated[str, typer.Option(help="A label")] = "default"
) -> None:
    """Create a key; it is shown once, as the last line, and only its hash is stored."""
    from app.api_keys.service import create_key
    from app.db import unit_of_work

    async def body(state: State) -> str:
        found = await _shop_or_exit(state, shop)
        async with unit_of_work(state.sessionmaker) as session:
            created = await create_key(session, found, name)
        return created.plaintext

    plaintext = run_with_state(body)
    console.print("Store this key now; Stamp keeps only its hash:", highlight=False)
    print(plaintext)


@apikey_cli.command("list")
def apikey_list(shop: ShopOption) -> None:
    from app.api_keys.service import list_keys

    async def body(state: State) -> None:
        found = await _shop_or_exit(state, shop)
        async with state.sessionmaker() as session:
            for key in await list_keys(session, found):
                status = "revoked" if key.revoked_at else "active"
                print(f"{key.id}\t{key.prefix}…\t{key.name}\t{status}\t{key.created_at:%Y-%m-%d}")

    run_with_state(body)


@apikey_cli.command("revoke")
def apikey_revoke(shop: ShopOption, key_id: Annotated[int, typer.Argument()]) -> None:
    from app.api_keys.service import revoke_key
    from app.db import unit_of_work
    from app.errors import AppError

    async def body(state: State) -> None:
        found = await _shop_or_exit(state, shop)
        try:
            async with unit_of_work(state.sessionmaker) as session:
                await revoke_key(session, found, key_id)
        except AppError as exc:
            err.print(f"[red]{exc.message}[/red]")
            raise typer.Exit(code=1) from exc
        console.print(f"Revoked key {key_id}.")

    run_with_state(body)


@webhooks_cli.command("replay")
def webhooks_replay(
    dead_letter_id: Annotated[int | None, typer.Option("--id", help="One dead letter")] = None,
    shop: Annotated[str | None, typer.Option("--shop")] = None,
) -> None:
    """Run open dead letters through their handlers again."""
    from webhooks.handlers import handlers_for
    from webhooks.pipeline import open_dead_letter_ids, replay

    async def body(state: State) -> int:
        shop_id = (await _shop_or_exit(state, shop)).id if shop else None
        ids = [dead_letter_id] if dead_letter_id else await open_dead_letter_ids(state, shop_id)
        failures = 0
        for letter_id in ids:
            outcome = await replay(state, letter_id, handlers_for)
            colour = "green" if outcome.result == "processed" else "red"
            console.print(
                f"dead letter {letter_id}: [{colour}]{outcome.result}[/{colour}] {outcome.detail}"
            )
            failures += outcome.result != "processed"
        console.print(f"{len(ids) - failures} replayed, {failures} still failing.")
        return failures

    failures = run_with_state(body)
    raise typer.Exit(code=1 if failures else 0)


@webhooks_cli.command("purge")
def webhooks_purge(
    days: Annotated[int | None, typer.Option(help="Retention in days")] = None,
) -> None:
    """Drop stored webhook bodies older than the retention period."""
    from webhooks.pipeline import purge_stored_bodies

    async def body(state: State) -> int:
        return await purge_stored_bodies(state, days or state.settings.WEBHOOK_BODY_RETENTION_DAYS)

    console.print(f"Purged {run_with_state(body)} stored bodies.")


@ledger_cli.command("verify")
def ledger_verify(
    shop: Annotated[str | None, typer.Option("--shop", help="Only this shop")] = None,
) -> None:
    """Recompute every balance from the entries; exit 1 on any drift."""
    from app.ledger.engine import verify

    async def body(state: State) -> list[str]:
        shop_id = (await _shop_or_exit(state, shop)).id if shop else None
        async with state.sessionmaker() as session:
            return await verify(session, shop_id)

    drift = run_with_state(body)
    for line in drift:
        err.print(f"[red]drift[/red] {line}", soft_wrap=True)
    if drift:
        err.print(f"[red]{len(drift)} member(s) drifted from their ledger.[/red]")
        raise typer.Exit(code=1)
    console.print("Ledger verified: every cached balance equals the sum of its entries.")


def main() -> None:
    try:
        cli()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
