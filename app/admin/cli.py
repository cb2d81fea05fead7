"""`stamp admin ...`: open the admin outside Shopify (the demo, WooCommerce stores)."""

from __future__ import annotations

from typing import Annotated

import typer

admin_cli = typer.Typer(help="The merchant admin.", no_args_is_help=True)

EXIT_UNKNOWN_SHOP = 2


@admin_cli.command("login-link")
def login_link(
    shop: Annotated[str, typer.Option("--shop", help="The shop's domain, e.g. x.myshopify.com")],
) -> None:
    """Print a signed link (valid 15 minutes) that signs its opener in to the shop's admin."""
    from app.admin import auth
    from app.cli import run_with_state
    from app.models import Platform, ShopStatus
    from app.shops.repository import ShopRepository
    from app.state import State

    async def body(state: State) -> str | None:
        async with state.sessionmaker() as session:
            repo = ShopRepository(session)
            for platform in (Platform.shopify, Platform.woocommerce):
                found = await repo.get_by_domain(shop.strip(), platform)
                if found is not None and found.status == ShopStatus.installed:
                    return auth.login_link(state.settings, found)
        return None

    link = run_with_state(body)
    if link is None:
        typer.echo(f"No installed shop {shop!r} is known to Stamp.", err=True)
        raise typer.Exit(code=EXIT_UNKNOWN_SHOP)
    typer.echo(link)


@admin_cli.command("rebuild-rollups")
def rebuild_rollups() -> None:
    """Recompute the home page's daily points rollup of every shop from the ledger (the
    backfill after restoring or bulk-loading entries outside the ledger service)."""
    from app.cli import run_with_state
    from app.db import unit_of_work
    from app.rollups import service as rollups
    from app.state import State

    async def body(state: State) -> list[int]:
        async with unit_of_work(state.sessionmaker) as session:
            return await rollups.rebuild(session)

    shops = run_with_state(body)
    typer.echo(f"Rebuilt the daily points rollup of {len(shops)} shop(s).")
