"""A small Mailchimp Marketing API (3.0) client over the shared `state.http` client.

The API key ends in its data centre (`...-us6`), which names the host
(`https://us6.api.mailchimp.com/3.0`); auth is HTTP Basic with any user name and the key.
Mailchimp limits each account to 10 simultaneous connections and answers 429 beyond
that: like the Klaviyo client, a 429 waits `Retry-After` when given (else backoff), 5xx
and network failures back off with jitter, and 401/403 mean the key no longer works.
"""

from __future__ import annotations

import asyncio
import io
import random
import tarfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from app.errors import AppError
from app.http import retry_after
from app.integrations.klaviyo.client import (
    BASE_BACKOFF_SECONDS,
    MAX_WAIT_SECONDS,
    RETRY_STATUSES,
    Sleep,
)

MAX_ATTEMPTS = 6


class MailchimpError(AppError):
    status_code = 502
    code = "mailchimp_error"


class MailchimpAuthError(MailchimpError):
    status_code = 422
    code = "mailchimp_key_rejected"


class MailchimpUnavailable(MailchimpError):
    status_code = 503
    code = "mailchimp_unavailable"


class MailchimpRejected(MailchimpError):
    """A 4xx about the request itself (a bad email, a missing audience)."""

    code = "mailchimp_rejected"

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def detail_of(response: httpx.Response) -> str:
    """Mailchimp's problem+json `detail` (or title), else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body)[:500]
    return str(body)[:300]


@dataclass(frozen=True, slots=True)
class BatchStatus:
    batch_id: str
    status: str  # pending, preprocessing, started, finalizing, finished
    total: int
    finished: int
    errored: int
    response_body_url: str | None

    @property
    def done(self) -> bool:
        return self.status == "finished"


@dataclass(slots=True)
class MailchimpClient:
    http: httpx.AsyncClient
    base_url: str
    api_key: str
    sleep: Sleep = field(default=asyncio.sleep)
    jitter: Callable[[], float] = field(default=random.random)
    max_attempts: int = MAX_ATTEMPTS
    requests: int = 0

    def backoff(self, attempt: int) -> float:
        base = min(BASE_BACKOFF_SECONDS * 2.0 ** (attempt - 1), MAX_WAIT_SECONDS)
        return base * (0.5 + 0.5 * self.jitter())

    async def send(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One request, retried on 429/5xx/network; any other answer is returned."""
        url = self.base_url.rstrip("/") + path
        content = orjson.dumps(body) if body is not None else None
        reason = "no attempt made"
        for attempt in range(1, self.max_attempts + 1):
            self.requests += 1
            try:
                response = await self.http.request(
                    method,
                    url,
                    content=content,
                    params=params,
                    auth=("stamp", self.api_key),
                    headers={"Content-Type": "application/json"},
                )
            except httpx.TransportError as exc:
                wait, reason = self.backoff(attempt), f"was unreachable ({type(exc).__name__})"
            else:
                if response.status_code == 429:
                    wait = retry_after(response) or self.backoff(attempt)
                    reason = "answered 429 (too many connections)"
                elif response.status_code in RETRY_STATUSES:
                    wait, reason = self.backoff(attempt), f"answered {response.status_code}"
                elif response.status_code in (401, 403):
                    raise MailchimpAuthError(
                        f"Mailchimp refused the API key ({response.status_code}: "
                        f"{detail_of(response)}). Create an API key under Profile > Extras > "
                        "API keys and connect Mailchimp again."
                    )
                else:
                    return response
            if attempt < self.max_attempts:
                await self.sleep(wait)
        raise MailchimpUnavailable(
            f"Mailchimp {reason} on {method} {path} after {self.max_attempts} attempts"
        )

    def ok(self, response: httpx.Response, what: str) -> Any:
        if response.is_success:
            return response.json() if response.content else {}
        raise MailchimpRejected(
            f"Mailchimp refused {what} ({response.status_code}: {detail_of(response)})",
            response.status_code,
        )

    async def ping(self) -> None:
        self.ok(await self.send("GET", "/ping"), "the key check")

    async def audiences(self) -> list[dict[str, str]]:
        body = self.ok(
            await self.send(
                "GET", "/lists", params={"count": "100", "fields": "lists.id,lists.name"}
            ),
            "the audience list",
        )
        return [
            {"id": str(item.get("id")), "name": str(item.get("name"))}
            for item in body.get("lists") or []
        ]

    async def audience(self, list_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self.ok(
            await self.send("GET", f"/lists/{list_id}"), f"the audience {list_id}"
        )
        return body

    async def merge_field_tags(self, list_id: str) -> set[str]:
        body = self.ok(
            await self.send(
                "GET",
                f"/lists/{list_id}/merge-fields",
                params={"count": "1000", "fields": "merge_fields.tag"},
            ),
            "the merge fields",
        )
        return {str(item.get("tag")) for item in body.get("merge_fields") or []}

    async def create_merge_field(self, list_id: str, field_: Mapping[str, Any]) -> None:
        self.ok(
            await self.send("POST", f"/lists/{list_id}/merge-fields", body=dict(field_)),
            f"the merge field {field_.get('tag')}",
        )

    async def put_member(self, list_id: str, subscriber_hash: str, body: Mapping[str, Any]) -> None:
        """Add or update (`status_if_new` applies only to a new contact)."""
        self.ok(
            await self.send("PUT", f"/lists/{list_id}/members/{subscriber_hash}", body=dict(body)),
            "the contact",
        )

    async def patch_member(
        self, list_id: str, subscriber_hash: str, body: Mapping[str, Any]
    ) -> bool:
        """Update an existing contact only; False when it is not in the audience (404)."""
        response = await self.send(
            "PATCH", f"/lists/{list_id}/members/{subscriber_hash}", body=dict(body)
        )
        if response.status_code == 404:
            return False
        self.ok(response, "the contact update")
        return True

    async def update_tags(
        self, list_id: str, subscriber_hash: str, tags: Sequence[Mapping[str, str]]
    ) -> None:
        self.ok(
            await self.send(
                "POST",
                f"/lists/{list_id}/members/{subscriber_hash}/tags",
                body={"tags": list(tags)},
            ),
            "the tags",
        )

    async def start_batch(self, operations: Sequence[Mapping[str, Any]]) -> str:
        body = self.ok(
            await self.send("POST", "/batches", body={"operations": list(operations)}),
            "the batch",
        )
        batch_id = body.get("id")
        if not batch_id:
            raise MailchimpRejected("Mailchimp accepted the batch without an id", 200)
        return str(batch_id)

    async def batch_status(self, batch_id: str) -> BatchStatus:
        body = self.ok(await self.send("GET", f"/batches/{batch_id}"), "the batch status")
        return BatchStatus(
            batch_id=batch_id,
            status=str(body.get("status", "")),
            total=int(body.get("total_operations") or 0),
            finished=int(body.get("finished_operations") or 0),
            errored=int(body.get("errored_operations") or 0),
            response_body_url=body.get("response_body_url") or None,
        )

    async def batch_results(self, url: str) -> list[dict[str, Any]]:
        """Per-operation results of a finished batch: a gzipped tar of JSON arrays of
        `{"status_code", "operation_id", "response"}` at Mailchimp's `response_body_url`."""
        response = await self.http.get(url)
        if not response.is_success:
            raise MailchimpUnavailable(
                f"Mailchimp's batch results could not be read ({response.status_code})"
            )
        return parse_batch_results(response.content)


def parse_batch_results(archive: bytes) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            handle = tar.extractfile(member)
            if handle is None:
                continue
            try:
                items = orjson.loads(handle.read())
            except orjson.JSONDecodeError:
                continue
            if isinstance(items, list):
                found.extend(item for item in items if isinstance(item, dict))
    return found
