"""Import: upload a points CSV, see the CLI's dry-run report, then import with progress.

The admin only imports a file whose dry run is clean: a file with broken rows is refused
as a whole (the report names each line), so a merchant never half-imports a file and then
wonders which rows made it. The import itself streams its progress as it goes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from markupsafe import escape
from starlette.datastructures import UploadFile
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from app.admin.edge import AdminContext, Refused, embedded_headers, page, templates
from app.imports.points_csv import (
    CHUNK_SIZE,
    ImportFileError,
    ImportReport,
    import_points,
    read_csv,
)
from app.models import Shop
from app.state import State

MAX_FILE_BYTES = 8 * 1024 * 1024


async def form(ctx: AdminContext) -> Response:
    return ctx.render("import.html", report=None, errors={}, done=False)


async def _text(ctx: AdminContext) -> str | None:
    assert ctx.form is not None
    upload = ctx.form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return None
    raw = await upload.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise Refused(_refusal(ctx, f"The file is larger than {MAX_FILE_BYTES // 1024 // 1024} MB"))
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Refused(_refusal(ctx, "The file is not UTF-8 text; save it as CSV (UTF-8)")) from None


def _refusal(ctx: AdminContext, message: str, report: ImportReport | None = None) -> Response:
    return ctx.render("import.html", 422, report=report, errors={"file": message}, done=False)


async def upload(ctx: AdminContext) -> Response:
    """Check the file (always a dry run first); import it only when every row is good."""
    text = await _text(ctx)
    if text is None:
        raise Refused(_refusal(ctx, "Choose a CSV file with the columns email and points"))
    shop = ctx.shop
    ctx.session.expunge(shop)
    # The import runs its own transactions (a chunk each); end the page's one first.
    await ctx.session.rollback()
    try:
        report = await import_points(ctx.state, shop, read_csv(text.splitlines(True)), True, None)
    except ImportFileError as exc:
        raise Refused(_refusal(ctx, exc.message)) from exc
    if ctx.field("mode") != "import" or report.rows == 0:
        return ctx.render("import.html", report=report, errors={}, done=False)
    if report.rejected:
        raise Refused(
            _refusal(
                ctx,
                f"Nothing was imported: {len(report.rejected)} row(s) are broken. "
                "Fix them (see the lines below) and upload the file again.",
                report,
            )
        )
    return StreamingResponse(
        _stream(ctx, ctx.state, shop, text, report.rows),
        media_type="text/html; charset=utf-8",
        headers=embedded_headers(shop.domain),
    )


async def _stream(
    ctx: AdminContext, state: State, shop: Shop, text: str, total: int
) -> AsyncIterator[str]:
    """The page, then a progress line per chunk, then the final report."""
    head, tail = (
        templates.get_template("import_progress.html")
        .render(**ctx.base_context(), total=total, chunk=CHUNK_SIZE)
        .split("<!--progress-->")
    )
    yield head
    progress: asyncio.Queue[int | None] = asyncio.Queue()

    async def run() -> ImportReport:
        try:
            return await import_points(
                state, shop, read_csv(text.splitlines(True)), False, progress.put_nowait
            )
        finally:
            progress.put_nowait(None)

    task = asyncio.create_task(run())
    handled = 0
    while (step := await progress.get()) is not None:
        handled += step
        yield f'<p class="progress">Imported {handled} of {total} rows…</p>\n'
    report = await task
    yield templates.get_template("_import_report.html").render(report=report)
    done = escape(str(report.imported))
    yield f'<p class="banner banner--success" role="status">Done: {done} imported.</p>'
    yield tail


routes: list[BaseRoute] = [
    Route("/admin/import", page(form), methods=["GET"]),
    Route("/admin/import", page(upload), methods=["POST"]),
]
