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
    help="Connect Stamp to Klaviyo, Judge.me, Mailchimp and Segment; see how syncs are doing.",
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
    kind: Annotated[str, typer.Argument(help="klaviyo, mailchimp or segment")] = "klaviyo",
) -> None:
    """Disconnect a tool: forget its key; a later connection starts with a full sync."""
    from app.db import unit_of_work
    from app.integrations.klaviyo import service as klaviyo
    from app.integrations.mailchimp import service as mailchimp
    from app.integrations.segment import service as segment

    tools = {
        "klaviyo": klaviyo.disconnect,
        "mailchimp": mailchimp.disconnect,
        "segment": segment.disconnect,
    }
    if kind not in tools:
        _err().print("Only klaviyo, mailchimp or segment can be disconnected here.")
        raise typer.Exit(code=EXIT_REFUSED)

    async def body(state: State) -> bool:
        found = await _shop(state, shop)
        async with unit_of_work(state.sessionmaker) as session:
            return await tools[kind](session, found)

    done = _run_with_state(body)
    name = kind.capitalize()
    _out().print(f"{name} disconnected." if done else f"{name} was not connected.")


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


@connect_cli.command("mailchimp")
def connect_mailchimp(
    shop: ShopOption,
    key: Annotated[str, typer.Option("--key", help="A Mailchimp API key (...-us6)")],
    audience: Annotated[
        str | None, typer.Option("--audience", help="Audience id; omit to list them")
    ] = None,
    add_transactional: Annotated[
        bool,
        typer.Option(
            "--add-transactional/--existing-only",
            help="Add members who have not consented as transactional contacts "
            "(default: only update contacts already in the audience)",
        ),
    ] = False,
) -> None:
    """Check the key, prepare the audience's STAMP_* merge fields, store the key, sync."""
    from app.db import unit_of_work
    from app.integrations.mailchimp import service

    async def body(state: State) -> list[dict[str, str]] | None:
        found = await _shop(state, shop)
        try:
            if audience is None:
                return await service.audiences(state, key)
            checked = await service.prepare(state, key, audience)
        except AppError as exc:
            raise _refused(exc) from exc
        async with unit_of_work(state.sessionmaker) as session:
            await service.save(
                session, state.cipher, found, checked, audience, add_transactional=add_transactional
            )
        return None

    listed = _run_with_state(body)
    if listed is not None:
        _err().print("Choose an audience with --audience:")
        for item in listed:
            _out().print(f"  {item['id']}  {escape(item['name'])}")
        raise typer.Exit(code=EXIT_REFUSED)
    _out().print(f"Mailchimp connected to {shop}; the first sync has been queued.")


@connect_cli.command("segment")
def connect_segment(
    shop: ShopOption,
    event: Annotated[
        list[str],
        typer.Option("--event", help="'Segment event name=custom_action_key' (repeatable)"),
    ],
    write_key: Annotated[
        str | None, typer.Option("--write-key", help="Source write key, for identify calls")
    ] = None,
    shared_secret: Annotated[
        str | None, typer.Option("--shared-secret", help="Omit to have Stamp generate one")
    ] = None,
) -> None:
    """Accept Segment track events as custom actions (and send identify calls)."""
    from app.db import unit_of_work
    from app.integrations.segment import service

    mapping: dict[str, str] = {}
    for item in event:
        name, sep, action = item.rpartition("=")
        if not sep or not name.strip() or not action.strip():
            _err().print(f"--event {escape(repr(item))} is not 'Event Name=action_key'")
            raise typer.Exit(code=EXIT_REFUSED)
        mapping[name.strip()] = action.strip()

    async def body(state: State) -> service.SegmentConnected:
        found = await _shop(state, shop)
        try:
            async with unit_of_work(state.sessionmaker) as session:
                return await service.connect(
                    session,
                    state.cipher,
                    state.settings,
                    found,
                    mapping,
                    shared_secret=shared_secret,
                    write_key=write_key,
                )
        except AppError as exc:
            raise _refused(exc) from exc

    connected = _run_with_state(body)
    _out().print(
        "Segment connected. In Segment, add a Webhooks destination with\n"
        f"  URL:           {connected.webhook_url}\n"
        f"  Shared secret: {connected.shared_secret}\n"
        + ("Identify calls are on." if connected.identify else "Identify calls are off.")
    )


@connect_cli.command("webhooks")
def webhooks(shop: ShopOption) -> None:
    """Outgoing webhook subscriptions, with why any was disabled."""
    from app.integrations.outgoing import service

    async def body(state: State) -> str:
        found = await _shop(state, shop)
        async with state.sessionmaker() as session:
            rows = await service.list_subscriptions(session, found, limit=200)
        return "[" + ",".join(row.model_dump_json() for row in rows) + "]"

    typer.echo(_run_with_state(body))


if __name__ == "__main__":
    connect_cli()
