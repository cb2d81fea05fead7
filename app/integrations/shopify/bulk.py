"""Shopify bulk queries: export a whole connection (every customer, every order) at once.

`bulkOperationRunQuery` starts the export, `node(id:)` is polled until the operation is
COMPLETED (or FAILED, CANCELED, EXPIRED), and the JSONL file at its `url` is downloaded
through `state.http` to a temporary file and parsed line by line, so a shop with a
million orders never sits in memory. Nested connections come out as their own lines
carrying `__parentId`; with `group_objects=True` Shopify writes each parent's children
directly after it, which `BulkResult.grouped` relies on to pair them while streaming.

The download URL points at cloud storage, not the shop: it is fetched without the access
token.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import IO, Any

import httpx
import orjson

from app.integrations.shopify.admin import AdminClient, AdminError, AdminUnavailable
from app.state import State

logger = logging.getLogger(__name__)

RUN_QUERY = """
mutation StampBulkQuery($query: String!, $groupObjects: Boolean!) {
  bulkOperationRunQuery(query: $query, groupObjects: $groupObjects) {
    bulkOperation { id status }
    userErrors { field message code }
  }
}
"""

STATUS_QUERY = """
query StampBulkStatus($id: ID!) {
  node(id: $id) {
    ... on BulkOperation { id status errorCode objectCount url partialDataUrl }
  }
}
"""

DONE = "COMPLETED"
FAILED = frozenset({"FAILED", "CANCELED", "CANCELING", "EXPIRED"})
# Shopify's own failures that a later run may not hit; ACCESS_DENIED needs a new scope.
RETRYABLE_ERROR_CODES = frozenset({"INTERNAL_SERVER_ERROR", "TIMEOUT"})

POLL_SECONDS = 1.0
MAX_POLL_SECONDS = 15.0
MAX_WAIT_SECONDS = 6 * 3600.0
DOWNLOAD_CHUNK_BYTES = 64 * 1024


class BulkOperationFailed(AdminError):
    """The export ended without a result (failed, cancelled, expired or never finished)."""

    code = "shopify_bulk_operation_failed"

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class BulkOutputError(AdminError):
    """The JSONL file is not what the query asked for (bad JSON, orphaned child line)."""

    code = "shopify_bulk_output_invalid"


@dataclass(frozen=True, slots=True)
class BulkOperation:
    id: str
    status: str
    error_code: str | None = None
    object_count: int = 0
    url: str | None = None


def _operation(raw: Any) -> BulkOperation:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise AdminError("Shopify's answer had no bulk operation")
    return BulkOperation(
        id=raw["id"],
        status=str(raw.get("status") or ""),
        error_code=raw.get("errorCode"),
        object_count=int(raw.get("objectCount") or 0),
        url=raw.get("url"),
    )


async def start(client: AdminClient, query: str, *, group_objects: bool = False) -> str:
    """Start a bulk query and return the operation's id (Shopify refuses a second one)."""
    data = await client.execute(RUN_QUERY, {"query": query, "groupObjects": group_objects})
    return _operation((data.get("bulkOperationRunQuery") or {}).get("bulkOperation")).id


async def wait_for(
    client: AdminClient,
    operation_id: str,
    *,
    poll_seconds: float = POLL_SECONDS,
    max_wait_seconds: float = MAX_WAIT_SECONDS,
) -> BulkOperation:
    """Poll until the operation completes; raise `BulkOperationFailed` if it cannot.

    The interval grows by half each poll up to 15 s, so a quick export returns quickly
    and a long one costs few requests. Time is counted in the waits themselves.
    """
    waited = 0.0
    interval = poll_seconds
    while True:
        data = await client.execute(STATUS_QUERY, {"id": operation_id})
        operation = _operation(data.get("node"))
        if operation.status == DONE:
            return operation
        if operation.status in FAILED:
            raise BulkOperationFailed(
                f"Shopify's bulk export {operation_id} ended {operation.status}"
                + (f" ({operation.error_code})" if operation.error_code else ""),
                retryable=operation.error_code in RETRYABLE_ERROR_CODES,
            )
        if waited >= max_wait_seconds:
            raise BulkOperationFailed(
                f"Shopify's bulk export {operation_id} was still {operation.status} after "
                f"{int(waited)} s",
                retryable=True,
            )
        await client.sleep(interval)
        waited += interval
        interval = min(interval * 1.5, MAX_POLL_SECONDS)


async def run_query(
    client: AdminClient,
    query: str,
    *,
    group_objects: bool = False,
    poll_seconds: float = POLL_SECONDS,
    max_wait_seconds: float = MAX_WAIT_SECONDS,
) -> BulkOperation:
    """Start a bulk query and wait for its result file."""
    operation_id = await start(client, query, group_objects=group_objects)
    logger.info("Bulk export %s started for %s", operation_id, client.shop_domain)
    return await wait_for(
        client, operation_id, poll_seconds=poll_seconds, max_wait_seconds=max_wait_seconds
    )


class BulkResult:
    """A downloaded JSONL result, read lazily from its temporary file."""

    def __init__(self, path: str | None) -> None:
        self.path = path

    def records(self) -> Iterator[dict[str, Any]]:
        """Every object in file order; blank lines skipped, bad JSON refused by line."""
        if self.path is None:
            return
        with open(self.path, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise BulkOutputError(f"Line {number} of the bulk result is not JSON") from exc
                if not isinstance(record, dict):
                    raise BulkOutputError(f"Line {number} of the bulk result is not an object")
                yield record

    def grouped(self) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """Each top-level object with its child lines (one level of nesting).

        Needs grouped output (`group_objects=True`): a child that does not follow its
        parent is refused rather than silently attached to the wrong object or dropped.
        """
        parent: dict[str, Any] | None = None
        children: list[dict[str, Any]] = []
        for record in self.records():
            parent_id = record.get("__parentId")
            if parent_id is None:
                if parent is not None:
                    yield parent, children
                parent, children = record, []
                continue
            if parent is None or parent.get("id") != parent_id:
                raise BulkOutputError(
                    f"Bulk result line for {record.get('id')!r} does not follow its parent "
                    f"{parent_id!r}; run the query with group_objects=True"
                )
            children.append(record)
        if parent is not None:
            yield parent, children


def _spool() -> tuple[IO[bytes], str]:
    handle = tempfile.NamedTemporaryFile(prefix="stamp-bulk-", suffix=".jsonl", delete=False)
    return handle, handle.name


@asynccontextmanager
async def download(state: State, operation: BulkOperation) -> AsyncIterator[BulkResult]:
    """Fetch the result file to a temporary file (removed afterwards) and open it.

    A completed export with no objects has no `url`; that is an empty result.
    """
    if operation.url is None:
        yield BulkResult(None)
        return
    handle, path = _spool()
    try:
        with handle:
            await _fetch(state, operation, handle)
        yield BulkResult(path)
    finally:
        with suppress(FileNotFoundError):
            os.unlink(path)


async def _fetch(state: State, operation: BulkOperation, handle: IO[bytes]) -> None:
    assert operation.url is not None
    try:
        async with state.http.stream("GET", operation.url) as response:
            if response.status_code >= 500:
                raise AdminUnavailable(
                    f"Downloading bulk export {operation.id} failed with {response.status_code}"
                )
            if not response.is_success:
                raise AdminError(
                    f"Downloading bulk export {operation.id} was refused with "
                    f"{response.status_code} (the link lasts 7 days); run the export again"
                )
            async for chunk in response.aiter_bytes(DOWNLOAD_CHUNK_BYTES):
                handle.write(chunk)
    except httpx.HTTPError as exc:
        raise AdminUnavailable(
            f"Downloading bulk export {operation.id} failed ({type(exc).__name__}); try again"
        ) from exc
