"""`stamp winback ...`: fit, scan, evaluate and the incentive's lift report.

Mounted by `app.cli` as `stamp winback`; commands import `app.cli` helpers when they run,
so mounting creates no import cycle.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app.state import State

winback_cli = typer.Typer(help="Win-back: find lapsing buyers and measure the offer's lift.")

ShopOption = Annotated[str, typer.Option("--shop", help="The shop's domain, e.g. x.myshopify.com")]


def _console() -> Console:
    return Console(soft_wrap=True, highlight=False)


@winback_cli.command("evaluate")
def evaluate_command(
    orders: Annotated[
        Path, typer.Option("--orders", help="CSV: customer_id,order_id,created_at,amount")
    ],
    cutoff: Annotated[str, typer.Option("--cutoff", help="Last day of the fit (ISO date)")],
    horizon: Annotated[int, typer.Option("--horizon", min=1, help="Days after the cut-off")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object")] = False,
    min_repeaters: Annotated[int, typer.Option(help="Below this, the recency rule")] = 300,
) -> None:
    """Fit on orders up to the cut-off; AUC, precision, recall vs the recency baseline."""
    from app.winback import evaluate as evaluation  # numpy/scipy: only when used

    console = _console()
    try:
        cut = date.fromisoformat(cutoff)
        size = max(orders.stat().st_size, 1)
        with (
            orders.open(newline="", encoding="utf-8-sig") as handle,
            Progress(
                TextColumn("reading"),
                BarColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                disable=as_json or size < 5_000_000,
                transient=True,
            ) as bar,
        ):
            task = bar.add_task("read", total=size)
            customers, days = evaluation.read_orders(
                handle, lambda _: bar.update(task, completed=handle.tell())
            )
        result = evaluation.evaluate(customers, days, cut, horizon, min_repeaters)
    except (OSError, ValueError) as exc:
        Console(stderr=True).print(f"Cannot evaluate: {exc}")
        raise typer.Exit(code=2) from exc
    if as_json:
        typer.echo(json.dumps(result.as_json()))
        return
    for line in evaluation.lines(result):
        console.print(line)


@winback_cli.command("fit")
def fit_command(shop: ShopOption) -> None:
    """Refit the shop's model now and print the AUC of each candidate."""
    from app.cli import _shop_or_exit, run_with_state
    from app.db import unit_of_work
    from app.models.base import utcnow
    from app.winback import service

    async def body(state: State) -> dict[str, object]:
        found = await _shop_or_exit(state, shop)
        async with unit_of_work(state.sessionmaker) as session:
            row = await service.fit_shop(session, found, utcnow())
            return dict(row.model)

    model = run_with_state(body)
    _console().print(
        f"chosen: {model['chosen']}; tau {model['tau_days']:.0f} days; AUCs {model['aucs']}"
    )


@winback_cli.command("scan")
def scan_command(shop: ShopOption) -> None:
    """Scan the shop's members now (with a progress bar); prints how many became at risk."""
    from app.cli import _shop_or_exit, run_with_state
    from app.db import unit_of_work
    from app.models.base import utcnow
    from app.winback import service

    async def body(state: State) -> int:
        found = await _shop_or_exit(state, shop)
        with Progress(
            TextColumn("scanning"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        ) as bar:
            task = bar.add_task("scan", total=None)

            def tick(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            async with unit_of_work(state.sessionmaker) as session:
                return await service.scan_shop(session, found, utcnow(), tick)

    _console().print(f"{run_with_state(body)} members became at risk.")


@winback_cli.command("incentive")
def incentive_command(
    shop: ShopOption,
    points: Annotated[int, typer.Option(min=0, help="Bonus points; 0 turns it off")],
    holdout: Annotated[float, typer.Option(min=0.0, max=0.9, help="Share held out")] = 0.2,
) -> None:
    """Give members who become at risk a bonus, except a random holdout share."""
    from app.cli import _shop_or_exit, run_with_state
    from app.db import unit_of_work
    from app.models.base import utcnow
    from app.winback import service

    async def body(state: State) -> None:
        found = await _shop_or_exit(state, shop)
        async with unit_of_work(state.sessionmaker) as session:
            await service.set_incentive(session, found, points, holdout, utcnow())

    run_with_state(body)
    _console().print(
        "Incentive off." if points == 0 else f"{points} points, {holdout:.0%} held out."
    )


@winback_cli.command("report")
def report_command(
    shop: ShopOption,
    days: Annotated[int, typer.Option(min=1, help="Flags in the last N days")] = 90,
) -> None:
    """Lift: won-back rate and revenue of treated vs held-out members."""
    from app.cli import _shop_or_exit, run_with_state
    from app.models.base import utcnow
    from app.winback import service

    async def body(state: State) -> dict[str, service.ArmReport]:
        found = await _shop_or_exit(state, shop)
        async with state.sessionmaker() as session:
            return await service.incentive_report(session, found, utcnow() - timedelta(days=days))

    console = _console()
    for arm in run_with_state(body).values():
        console.print(
            f"{arm.arm:<8} flagged {arm.flagged:>6}  won back {arm.won_back:>6} "
            f"({arm.won_back_rate:.1%})  revenue {arm.revenue}"
        )
