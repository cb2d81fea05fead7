"""Importing balances from a CSV: one `import` entry per member, at most once, row by row."""

from __future__ import annotations

import io
from datetime import date

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.imports import points_csv
from app.imports.points_csv import (
    ImportFileError,
    ImportReport,
    Rejection,
    import_key,
    import_points,
    read_csv,
)
from app.ledger import engine
from app.ledger import service as ledger
from app.models import Shop
from app.settings import Settings
from app.state import State
from tests.builders import create_member, create_shop, row_counts
from tests.imports.support import balances, entries, members_by_email

GOOD = (
    "Email,POINTS,Tier,Birthday\n"
    "ada@example.com,120,Silver,1990-05-17\n"
    "  Bob@Example.COM ,0,,\n"
    "carol@example.com,300,gold,\n"
)


def rows(text: str) -> list[points_csv.CsvRow]:
    return list(read_csv(io.StringIO(text, newline="")))


async def run(state: State, shop: Shop, text: str, *, dry_run: bool = False) -> ImportReport:
    return await import_points(state, shop, rows(text), dry_run, None)


@pytest.fixture
async def shop(session: AsyncSession, settings: Settings) -> Shop:
    """A shop on the default program (Bronze, Silver, Gold) with one account member, Carol,
    who already earned 50 points through the ledger."""
    found = await create_shop(session, settings)
    carol = await create_member(
        session, found, customer_id="77", email="carol@example.com", is_account=True
    )
    await ledger.post(
        session,
        found.id,
        ledger.Posting(member_id=carol.id, points=50, kind="earn", idempotency_key="order:1:earn"),
    )
    await session.commit()
    session.expunge(found)  # the code under test reads it from other sessions
    return found


async def test_good_file_imports_exact_balances_with_one_entry_each(
    state: State, session: AsyncSession, shop: Shop
) -> None:
    # when the file is imported
    report = await run(state, shop, GOOD)

    # then every row is imported, two guests are created and Carol is matched by email
    assert report == ImportReport(
        dry_run=False, imported=3, already_imported=0, members_created=2, points=420, rejected=[]
    )
    members = await members_by_email(session)
    assert set(members) == {"ada@example.com", "bob@example.com", "carol@example.com"}
    ada, bob, carol = (members[f"{name}@example.com"] for name in ("ada", "bob", "carol"))
    assert (ada.points_balance, ada.lifetime_points, ada.customer_id) == (120, 120, None)
    assert (ada.tier_name, ada.birthday) == ("Silver", date(1990, 5, 17))
    assert (bob.points_balance, bob.tier_name, bob.birthday) == (0, None, None)
    assert (carol.points_balance, carol.customer_id, carol.tier_name) == (350, "77", "Gold")
    ids = {"ada": ada.id, "bob": bob.id, "carol": carol.id}
    imports = [entry for entry in await entries(session) if entry.kind == "import"]
    assert sorted((entry.idempotency_key, entry.points, entry.member_id) for entry in imports) == (
        sorted(
            [
                (import_key("ada@example.com"), 120, ids["ada"]),
                (import_key("bob@example.com"), 0, ids["bob"]),
                (import_key("carol@example.com"), 300, ids["carol"]),
            ]
        )
    )
    assert {entry.status for entry in imports} == {"available"}
    assert await engine.verify(session) == []


async def test_rerun_of_the_same_or_an_edited_file_changes_nothing(
    state: State, session: AsyncSession, shop: Shop
) -> None:
    # given the file was imported once
    await run(state, shop, GOOD)
    counts, before = await row_counts(session), await balances(session)

    # when it runs again, and then an edited copy with new numbers runs
    again = await run(state, shop, GOOD)
    edited = await run(state, shop, "email,points\nada@example.com,999\nBOB@example.com,5\n")

    # then nothing is written and every row is reported as already imported
    assert again == ImportReport(dry_run=False, already_imported=3)
    assert edited == ImportReport(dry_run=False, already_imported=2)
    assert await row_counts(session) == counts
    assert (
        await balances(session)
        == before
        == {
            "ada@example.com": 120,
            "bob@example.com": 0,
            "carol@example.com": 350,
        }
    )
    assert await engine.verify(session) == []


async def test_dry_run_reports_what_would_happen_and_writes_nothing(
    state: State, session: AsyncSession, shop: Shop
) -> None:
    counts = await row_counts(session)

    report = await run(state, shop, GOOD + "bad-email,1,,\n", dry_run=True)

    assert report == ImportReport(
        dry_run=True,
        imported=3,
        members_created=2,
        points=420,
        rejected=[Rejection(5, "email 'bad-email' is not a valid email address")],
    )
    assert await row_counts(session) == counts

    # and after the real import, a dry run says every row is already imported
    await run(state, shop, GOOD)
    counts = await row_counts(session)
    assert await run(state, shop, GOOD, dry_run=True) == ImportReport(
        dry_run=True, already_imported=3
    )
    assert await row_counts(session) == counts


async def test_every_bad_row_is_rejected_with_its_line_and_reason(
    state: State, session: AsyncSession, shop: Shop
) -> None:
    text = (
        "email,points,tier,birthday\n"  # 1
        "ok@example.com,10,,\n"  # 2
        "bob@,5,,\n"  # 3
        "dec@example.com,12.5,,\n"  # 4
        "neg@example.com,-3,,\n"  # 5
        "tier@example.com,5,Platinum,\n"  # 6
        "bday@example.com,5,,1990-02-30\n"  # 7
        "OK@Example.com,7,,\n"  # 8
        "extra@example.com,5,,,surprise\n"  # 9
        "\n"  # 10 (blank, skipped)
        ",5,,\n"  # 11
        "short@example.com\n"  # 12
        "later@example.com,5,,2999-01-01\n"  # 13
        "us@example.com,5,,05/17/1990\n"  # 14
    )

    report = await run(state, shop, text)

    assert report.rejected == [
        Rejection(3, "email 'bob@' is not a valid email address"),
        Rejection(4, "points '12.5' is not a whole number"),
        Rejection(5, "points '-3' is negative; a carried-over balance cannot be below zero"),
        Rejection(6, "tier 'Platinum' is not a tier of this program (Bronze, Silver, Gold)"),
        Rejection(7, "birthday '1990-02-30' is not a date in the form YYYY-MM-DD"),
        Rejection(8, "email ok@example.com already appears on line 2"),
        Rejection(9, "1 more value(s) than the header has columns"),
        Rejection(11, "email is empty"),
        Rejection(12, "points is empty"),
        Rejection(13, "birthday '2999-01-01' is in the future"),
        Rejection(14, "birthday '05/17/1990' is not a date in the form YYYY-MM-DD"),
    ]
    assert (report.imported, report.already_imported, report.points) == (1, 0, 10)
    # and nothing was written for any rejected row
    assert await balances(session) == {"ok@example.com": 10, "carol@example.com": 50}
    assert [entry.idempotency_key for entry in await entries(session)] == [
        "order:1:earn",
        import_key("ok@example.com"),
    ]


async def test_unknown_column_refuses_the_file_before_writing(
    state: State, session: AsyncSession, shop: Shop
) -> None:
    counts = await row_counts(session)

    with pytest.raises(ImportFileError) as raised:
        await run(state, shop, "email,points,notes\nada@example.com,10,VIP\n")

    assert raised.value.message == (
        "line 1: unknown column 'notes'; the columns are email, points and optionally "
        "tier and birthday"
    )
    assert await row_counts(session) == counts


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("email,tier\n", "line 1: missing column(s) points"),
        ("Email,points,EMAIL\n", "line 1: column 'email' appears more than once"),
        ("", "The file is empty; line 1 must be the header"),
    ],
)
async def test_bad_headers_are_named(state: State, shop: Shop, header: str, message: str) -> None:
    with pytest.raises(ImportFileError) as raised:
        await run(state, shop, header)
    assert raised.value.message == message


async def test_plain_dict_rows_are_numbered_after_the_header(
    state: State, session: AsyncSession, shop: Shop
) -> None:
    report = await import_points(
        state,
        shop,
        [{"email": "ada@example.com", "points": "5"}, {"email": "ada@example.com", "points": "6"}],
        False,
        None,
    )

    assert report.rejected == [Rejection(3, "email ada@example.com already appears on line 2")]
    assert (await balances(session))["ada@example.com"] == 5


async def test_chunks_commit_separately_and_a_rerun_finishes_a_failed_import(
    state: State, session: AsyncSession, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given chunks of two rows, and a ledger that fails on the fourth member
    monkeypatch.setattr(points_csv, "CHUNK_SIZE", 2)
    text = "email,points\n" + "".join(f"m{n}@example.com,{n}\n" for n in range(1, 6))
    original = ledger.post

    async def failing(session: AsyncSession, shop_id: int, posting: ledger.Posting) -> int | None:
        if posting.idempotency_key == import_key("m4@example.com"):
            raise RuntimeError("database went away")
        return await original(session, shop_id, posting)

    monkeypatch.setattr(ledger, "post", failing)

    # when the import runs, it stops in the second chunk
    with pytest.raises(RuntimeError, match="database went away"):
        await run(state, shop, text)

    # then the first chunk is committed and the failed chunk left no trace
    assert await balances(session) == {
        "carol@example.com": 50,
        "m1@example.com": 1,
        "m2@example.com": 2,
    }

    # and when it runs again with a working ledger, it finishes without doubling anything
    monkeypatch.setattr(ledger, "post", original)
    progress: list[int] = []
    report = await import_points(state, shop, rows(text), False, progress.append)
    assert report == ImportReport(
        dry_run=False, imported=3, already_imported=2, members_created=3, points=12
    )
    assert progress == [2, 2, 1]
    assert await balances(session) == {
        "carol@example.com": 50,
        **{f"m{n}@example.com": n for n in range(1, 6)},
    }
    assert await engine.verify(session) == []
