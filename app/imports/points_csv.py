"""Importing balances from a previous loyalty program (`stamp import points FILE.csv`).

The file has a header `email,points[,tier][,birthday]` (any case, any order). Each good row
becomes ONE ledger entry of kind `import` under the key `import:<hash of the email>`, so a
member is imported at most once: running the same file again, or an edited copy of it,
changes nothing and reports those rows as already imported. Balances move only through
`app.ledger.service.post`, in chunks of `CHUNK_SIZE` rows per transaction so a big file
never holds one huge transaction (and a crash mid-file loses nothing a re-run cannot redo).

Rows are checked one by one and a bad row is rejected with its line number and the reason;
it never stops the good rows. A bad header refuses the whole file before anything runs.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import unit_of_work
from app.errors import AppError
from app.ledger import service as ledger
from app.members.service import member_for_customer
from app.models import EntryKind, LedgerEntry, Member, Shop
from app.models.base import utcnow
from app.program.config import ProgramConfig
from app.program.service import current_config
from app.state import State
from webhooks.shopify.normalise import normalise_email

REQUIRED_COLUMNS = ("email", "points")
OPTIONAL_COLUMNS = ("tier", "birthday")
COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
CHUNK_SIZE = 500
MAX_POINTS = 1_000_000_000
FIRST_DATA_LINE = 2  # line 1 is the header

_EMAIL = re.compile(r"^[^@\s,;:<>()\[\]\"]+@[^@\s,;:<>()\[\]\"]+\.[^@\s,;:<>()\[\]\"]+$")
_WHOLE = re.compile(r"^[0-9]+$")
_NEGATIVE_WHOLE = re.compile(r"^-[0-9]+$")
_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


class ImportFileError(AppError):
    """The file as a whole cannot be imported (its header); nothing was written."""

    code = "import_file_invalid"
    status_code = 422


class CsvRow(dict[str, str]):
    """A row that knows the physical line it started on (blank lines and quoted newlines
    make the row's position an unreliable line number)."""

    def __init__(self, values: Mapping[str, str], line: int) -> None:
        super().__init__(values)
        self.line = line


@dataclass(frozen=True, slots=True)
class Rejection:
    line: int
    reason: str


@dataclass(slots=True)
class ImportReport:
    """What happened (or, on a dry run, what would happen) to every row."""

    dry_run: bool
    imported: int = 0
    already_imported: int = 0
    members_created: int = 0
    points: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.imported + self.already_imported + len(self.rejected)


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    email: str
    points: int
    tier: str | None
    birthday: date | None

    @property
    def key(self) -> str:
        return import_key(self.email)


def import_key(email: str) -> str:
    """One import per member, keyed by a hash of the email so no address sits in the ledger."""
    return "import:" + hashlib.sha256(("stamp-import:" + email).encode()).hexdigest()[:40]


def check_header(names: Iterable[str | None]) -> None:
    """Refuse unknown, repeated or missing columns, naming them (header is line 1)."""
    seen: set[str] = set()
    for name in names:
        if name is None:
            continue
        column = name.strip().lower()
        if column not in COLUMNS:
            raise ImportFileError(
                f"line 1: unknown column {name.strip()!r}; the columns are "
                f"email, points and optionally tier and birthday"
            )
        if column in seen:
            raise ImportFileError(f"line 1: column {column!r} appears more than once")
        seen.add(column)
    missing = [column for column in REQUIRED_COLUMNS if column not in seen]
    if missing:
        raise ImportFileError(f"line 1: missing column(s) {', '.join(missing)}")


def read_csv(lines: Iterable[str]) -> Iterator[CsvRow]:
    """Rows of CSV text, each with the physical line it ends on; the header is checked
    before the first row is read."""
    reader = csv.DictReader(lines)
    if reader.fieldnames is None:
        raise ImportFileError("The file is empty; line 1 must be the header")
    check_header(reader.fieldnames)
    for row in reader:
        yield CsvRow(cast(Mapping[str, str], row), reader.line_num)


def _tier_names(config: ProgramConfig) -> dict[str, str]:
    if not config.tiers.enabled:
        return {}
    return {tier.name.casefold(): tier.name for tier in config.tiers.levels}


def _iso_date(text: str) -> date | None:
    """Strictly YYYY-MM-DD (`fromisoformat` alone also takes 19900517 and week dates)."""
    if not _ISO_DATE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _parse(raw: Mapping[Any, Any], line: int, tiers: Mapping[str, str]) -> _Row | str:
    """The row's values, or the precise reason it is rejected."""
    extra = raw.get(None)
    if extra:
        count = len(extra) if isinstance(extra, list) else 1
        return f"{count} more value(s) than the header has columns"
    values = {
        str(key).strip().lower(): ("" if value is None else str(value).strip())
        for key, value in raw.items()
        if key is not None
    }
    for column in values:
        if column not in COLUMNS:
            return f"unknown column {column!r}"

    raw_email = values.get("email", "")
    email = normalise_email(raw_email)
    if email is None:
        return "email is empty"
    if len(email) > 254 or not _EMAIL.fullmatch(email):
        return f"email {raw_email!r} is not a valid email address"

    text = values.get("points", "")
    if not text:
        return "points is empty"
    if _NEGATIVE_WHOLE.fullmatch(text):
        return f"points {text!r} is negative; a carried-over balance cannot be below zero"
    if not _WHOLE.fullmatch(text):
        return f"points {text!r} is not a whole number"
    points = int(text)
    if points > MAX_POINTS:
        return f"points {text!r} is more than the maximum of {MAX_POINTS}"

    tier: str | None = None
    if values.get("tier"):
        if not tiers:
            return f"tier {values['tier']!r} given but this program has no tiers"
        tier = tiers.get(values["tier"].casefold())
        if tier is None:
            return (
                f"tier {values['tier']!r} is not a tier of this program "
                f"({', '.join(tiers.values())})"
            )

    birthday: date | None = None
    if values.get("birthday"):
        text = values["birthday"]
        birthday = _iso_date(text)
        if birthday is None:
            return f"birthday {text!r} is not a date in the form YYYY-MM-DD"
        if birthday > utcnow().date():
            return f"birthday {text!r} is in the future"

    return _Row(line=line, email=email, points=points, tier=tier, birthday=birthday)


async def import_points(
    state: State,
    shop: Shop,
    rows: Iterable[Mapping[str, str]],
    dry_run: bool,
    progress: Callable[[int], None] | None,
) -> ImportReport:
    """Import (or on a dry run only check) every row; `progress(n)` after each n rows.

    Each row's line number is `row.line` for a `CsvRow`, else its position after the
    header. Raises `ImportFileError` for a bad header before anything is written.
    """
    report = ImportReport(dry_run=dry_run)
    async with state.sessionmaker() as session:
        tiers = _tier_names(await current_config(session, shop))
    first_line: dict[str, int] = {}
    batch: list[_Row] = []
    handled = 0
    header_checked = False
    for position, raw in enumerate(rows):
        line = raw.line if isinstance(raw, CsvRow) else position + FIRST_DATA_LINE
        if not header_checked:
            check_header(key for key in raw if key is not None)
            header_checked = True
        parsed = _parse(raw, line, tiers)
        if isinstance(parsed, str):
            report.rejected.append(Rejection(line, parsed))
        elif parsed.email in first_line:
            report.rejected.append(
                Rejection(
                    line, f"email {parsed.email} already appears on line {first_line[parsed.email]}"
                )
            )
        else:
            first_line[parsed.email] = line
            batch.append(parsed)
        handled += 1
        if len(batch) >= CHUNK_SIZE:
            await _chunk(state, shop, batch, report)
            batch = []
            if progress is not None:
                progress(handled)
            handled = 0
    if batch:
        await _chunk(state, shop, batch, report)
    if progress is not None and handled:
        progress(handled)
    return report


async def _imported_keys(session: AsyncSession, shop_id: int, keys: Collection[str]) -> set[str]:
    result = await session.execute(
        select(LedgerEntry.idempotency_key).where(
            LedgerEntry.shop_id == shop_id, LedgerEntry.idempotency_key.in_(list(keys))
        )
    )
    return set(result.scalars())


async def _members_by_email(
    session: AsyncSession, shop_id: int, emails: Collection[str]
) -> dict[str, Member]:
    """The member each email belongs to: a store account before a guest, oldest first."""
    result = await session.execute(
        select(Member)
        .where(Member.shop_id == shop_id, Member.email.in_(list(emails)))
        .order_by(Member.customer_id.is_(None), Member.id)
    )
    found: dict[str, Member] = {}
    for member in result.scalars():
        if member.email is not None:
            found.setdefault(member.email, member)
    return found


async def _chunk(state: State, shop: Shop, batch: list[_Row], report: ImportReport) -> None:
    """One transaction for up to CHUNK_SIZE rows; counts land in the report only after it
    commits (on a dry run, nothing is written at all)."""
    counts = ImportReport(dry_run=report.dry_run)
    if report.dry_run:
        async with state.sessionmaker() as session:
            await _plan(session, shop, batch, counts)
    else:
        async with unit_of_work(state.sessionmaker) as session:
            await _write(session, shop, batch, counts)
    report.imported += counts.imported
    report.already_imported += counts.already_imported
    report.members_created += counts.members_created
    report.points += counts.points


async def _plan(session: AsyncSession, shop: Shop, batch: list[_Row], counts: ImportReport) -> None:
    done = await _imported_keys(session, shop.id, [row.key for row in batch])
    members = await _members_by_email(session, shop.id, [row.email for row in batch])
    for row in batch:
        if row.key in done:
            counts.already_imported += 1
            continue
        counts.imported += 1
        counts.points += row.points
        counts.members_created += row.email not in members


async def _write(
    session: AsyncSession, shop: Shop, batch: list[_Row], counts: ImportReport
) -> None:
    done = await _imported_keys(session, shop.id, [row.key for row in batch])
    members = await _members_by_email(session, shop.id, [row.email for row in batch])
    for row in batch:
        if row.key in done:
            counts.already_imported += 1
            continue
        member = members.get(row.email)
        if member is None:
            match = await member_for_customer(session, shop, None, row.email, announce=False)
            if match.member is None:  # only without an email, which a valid row always has
                raise RuntimeError(f"no member could be made for line {row.line}")
            member = match.member
            counts.members_created += match.created
        entry_id = await ledger.post(
            session,
            shop.id,
            ledger.Posting(
                member_id=member.id,
                points=row.points,
                kind=EntryKind.import_,
                idempotency_key=row.key,
                source_type="import",
                reason="Balance carried over from a previous program",
                actor="import:csv",
            ),
        )
        if entry_id is None:  # a concurrent import got there first
            counts.already_imported += 1
            continue
        if row.tier is not None:
            member.tier_name = row.tier
        if row.birthday is not None:
            member.birthday = row.birthday
        member.updated_at = utcnow()
        counts.imported += 1
        counts.points += row.points
    await session.flush()
