"""`stamp connect ...`: connect Klaviyo and Judge.me from a terminal.

Mounted by `app.cli` as `stamp connect`. Commands open their State through
`app.cli.run_with_state`, imported when a command runs, so mounting creates no cycle.
Credentials are checked against the tool before anything is saved: a refused key or
token exits 1 with the tool's reason and leaves the database as it was.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from app.errors import AppError
from app.models import Platform, Shop
from app.state import State

connect_cli = typer.Typer(
    help="Connect Stamp to Klaviyo and Judge.me, and see how the Klaviyo sync is doing.",
    no_args_is_help=True,
)

T = TypeVar("T")

EXIT_REFUSED = 1
EXIT_UNKNOWN_SHOP = 2

ShopOption = Annotated[str, typer.Option("--shop", help="The shop's domain, e.g. x.myshopify.com")]


def _out() -> Console:
    return Console(soft_wrap=True, highlight=False)


def _err() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False)


def _run_with_state(body: Callable[[State], Awaitable[T]]) -> T:
    from app.cli import run_with_state

    return run_with_state(body)


async def _shop(state: State, domain: str) -> Shop:
    from app.shops.repository import ShopRepository

    async with state.sessionmaker() as session:
        repo = ShopRepository(session)
        for platform in (Platform.shopify, Platform.woocommerce):
            shop = await repo.get_by_domain(domain.strip(), platform)
            if shop is not None:
                return shop
    _err().print(f"No shop {escape(repr(domain))} is known to Stamp.")
    raise typer.Exit(code=EXIT_UNKNOWN_SHOP)


def _refused(exc: AppError) -> typer.Exit:
    _err().print(f"[red]Not connected:[/red] {escape(exc.message)}")
    return typer.Exit(code=EXIT_REFUSED)


@connect_cli.command("klaviyo")
def connect_klaviyo(
    shop: ShopOption,
    key: Annotated[str, typer.Option("--key", help="A Klaviyo private API key (pk_...)")],
) -> None:
    """Check the key with Klaviyo, store it encrypted and start the first sync."""
    from app.db import unit_of_work
    from app.integrations.klaviyo import service

    async def body(state: State) -> None:
        found = await _shop(state, shop)
        try:
            checked = await service.check_key(state, key)
        except AppError as exc:
            raise _refused(exc) from exc
        async with unit_of_work(state.sessionmaker) as session:
            await service.save_key(session, state.cipher, found, checked)

    _run_with_state(body)
    _out().print(f"Klaviyo connected to {shop}; the first sync has been queued.")


@connect_cli.command("judgeme")
def connect_judgeme(
    shop: ShopOption,
    token: Annotated[str, typer.Option("--token", help="The Judge.me private API token")],
) -> None:
    """Register Stamp's review webhooks with Judge.me, then store the token encrypted."""
    from app.db import unit_of_work
    from app.integrations.judgeme import service

    async def body(state: State) -> None:
        found = await _shop(state, shop)
        try:
            await service.register_webhooks(state, found, token)
        except AppError as exc:
            raise _refused(exc) from exc
        async with unit_of_work(state.sessionmaker) as session:
            await service.save_token(session, state.cipher, found, token)

    _run_with_state(body)
    _out().print(f"Judge.me connected to {shop}: published reviews now earn points.")


@connect_cli.command("disconnect")
def disconnect(
    shop: ShopOption,
    kind: Annotated[str, typer.Argument(help="klaviyo")] = "klaviyo",
) -> None:
    """Disconnect Klaviyo: forget the key; a later connection starts with a full sync."""
    from app.db import unit_of_work
    from app.integrations.klaviyo import service

    if kind != "klaviyo":
        _err().print("Only klaviyo can be disconnected here.")
        raise typer.Exit(code=EXIT_REFUSED)

    async def body(state: State) -> bool:
        found = await _shop(state, shop)
        async with unit_of_work(state.sessionmaker) as session:
            return await service.disconnect(session, found)

    done = _run_with_state(body)
    _out().print("Klaviyo disconnected." if done else "Klaviyo was not connected.")


@connect_cli.command("status")
def status(shop: ShopOption) -> None:
    """The Klaviyo sync status: last success, backlog, last error."""
    from app.integrations.klaviyo import service
    from app.integrations.klaviyo.schemas import KlaviyoStatus

    async def body(state: State) -> KlaviyoStatus:
        found = await _shop(state, shop)
        async with state.sessionmaker() as session:
            return await service.status(session, found)

    typer.echo(_run_with_state(body).model_dump_json(indent=2))


@connect_cli.command("sync")
def sync(
    shop: ShopOption,
    lease_seconds: Annotated[
        float, typer.Option(help="How long a crashed run keeps other workers off the shop")
    ] = 300.0,
) -> None:
    """Send the shop's Klaviyo backlog now, in the foreground, until nothing is left."""
    from app.integrations.klaviyo import sync as engine

    async def body(state: State) -> engine.SyncReport:
        found = await _shop(state, shop)
        options = engine.SyncOptions(lease_seconds=lease_seconds)
        return await engine.sync_until_settled(state, found.id, options=options)

    report = _run_with_state(body)
    _out().print(f"Klaviyo sync {report.status}: {report}")
    if report.status != "ok":
        raise typer.Exit(code=EXIT_REFUSED)


if __name__ == "__main__":
    connect_cli()
