"""`stamp import ...`: balances from a previous program, history from Shopify.

Mounted by `app.cli` as `stamp import`. Commands open their State through
`app.cli.run_with_state` (imported when a command runs, so mounting this app in `app.cli`
creates no import cycle).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app.errors import AppError
from app.imports.backfill import BackfillReport, backfill_shop
from app.imports.points_csv import (
    CsvRow,
    ImportFileError,
    ImportReport,
    import_points,
    read_csv,
)
from app.models import Shop
from app.shops.repository import ShopRepository
from app.state import State

import_cli = typer.Typer(
    help="Bring existing data into Stamp: balances from another program, history from Shopify.",
    no_args_is_help=True,
)

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_REFUSED = 2

ShopOption = Annotated[str, typer.Option("--shop", help="The shop's domain, e.g. x.myshopify.com")]


def _console() -> Console:
    return Console(soft_wrap=True, highlight=False)


async def _shop(state: State, domain: str) -> Shop:
    async with state.sessionmaker() as session:
        shop = await ShopRepository(session).get_by_domain(domain)
    if shop is None:
        Console(stderr=True, soft_wrap=True).print(
            f"No shop {escape(repr(domain))} is known to Stamp."
        )
        raise typer.Exit(code=EXIT_REFUSED)
    return shop


def _rows(path: Path) -> Iterator[CsvRow]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            yield from read_csv(handle)
    except UnicodeDecodeError as exc:
        raise ImportFileError("The file is not UTF-8 text; save it as CSV UTF-8") from exc


def _count_rows(path: Path) -> int | None:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return max(sum(1 for row in csv.reader(handle) if row) - 1, 0)
    except (UnicodeDecodeError, csv.Error):
        return None


def _print_points_report(console: Console, report: ImportReport) -> None:
    if report.dry_run:
        console.print("Dry run: nothing was written. This is what the import would do:")
    verb = "would import" if report.dry_run else "imported"
    console.print(f"  {verb + ':':<18}{report.imported} ({report.points} points)")
    console.print(f"  {'already imported:':<18}{report.already_imported}")
    console.print(f"  {'rejected:':<18}{len(report.rejected)}")
    console.print(f"  {'new members:':<18}{report.members_created}")
    if report.rejected:
        console.print("Rejected rows (nothing was written for them):")
        for rejection in report.rejected:
            console.print(f"  line {rejection.line}: {escape(rejection.reason)}")


@import_cli.command("points")
def points(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="The CSV file"),
    ],
    shop: ShopOption,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check every row and report; write nothing")
    ] = False,
) -> None:
    """Import balances from another program: a CSV with header email,points[,tier][,birthday].

    Each member's balance is booked as one `import` entry, at most once per email: running
    the same (or an edited) file again changes nothing and reports "already imported".
    Members are matched by email, or created as guests. `tier` must name a tier of the
    program; `birthday` is YYYY-MM-DD.

    Bad rows are rejected with their line number and reason, and the good rows are still
    imported. Exit code: 0 when no row was rejected, 1 when some rows were rejected (the
    others were imported), 2 when the file or shop was refused as a whole (nothing written).
    """
    from app.cli import run_with_state

    console = _console()
    total = _count_rows(file)

    async def body(state: State) -> ImportReport:
        found = await _shop(state, shop)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("Checking" if dry_run else "Importing", total=total)
            return await import_points(
                state,
                found,
                _rows(file),
                dry_run,
                lambda handled: bar.advance(task, handled),
            )

    try:
        report = run_with_state(body)
    except ImportFileError as exc:
        Console(stderr=True, soft_wrap=True).print(
            f"{escape(exc.message)}\nThe file was refused; nothing was written."
        )
        raise typer.Exit(code=EXIT_REFUSED) from exc
    _print_points_report(console, report)
    raise typer.Exit(code=EXIT_REJECTED if report.rejected else EXIT_OK)


def _print_history_report(console: Console, report: BackfillReport) -> None:
    console.print(
        f"  customers read:   {report.customers} "
        f"({report.members_created} new members, {report.members_matched} already known)"
    )
    console.print(
        f"  orders read:      {report.orders} "
        f"({report.orders_recorded} recorded, {report.orders_already_known} already known)"
    )
    console.print(
        f"  orders earning:   {report.orders_earned} ({report.points_awarded} points awarded)"
    )
    if report.skipped:
        console.print(f"  skipped:          {report.skipped}")
        for detail in report.skipped_details:
            console.print(f"    {escape(detail)}")


@import_cli.command("history")
def history(
    shop: ShopOption,
    reward_past_orders: Annotated[
        bool,
        typer.Option(
            "--reward-past-orders",
            help="Award points for past paid orders through the current rules (once each)",
        ),
    ] = False,
) -> None:
    """Import the shop's customers and orders from Shopify (bulk exports).

    Orders are recorded for tiers, win-back and analytics without points unless
    --reward-past-orders is given. Safe to run again: nothing is recorded or earned twice.
    """
    from app.cli import run_with_state

    console = _console()

    async def body(state: State) -> BackfillReport:
        found = await _shop(state, shop)
        with console.status("Starting") as status:
            return await backfill_shop(
                state, found.id, reward_past_orders, progress=lambda text: status.update(text)
            )

    try:
        report = run_with_state(body)
    except AppError as exc:
        Console(stderr=True, soft_wrap=True).print(escape(exc.message))
        raise typer.Exit(code=1) from exc
    _print_history_report(console, report)
