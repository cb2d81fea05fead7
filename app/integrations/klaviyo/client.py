"""A small Klaviyo REST client over the shared `state.http` client.

Klaviyo meters each endpoint per account in fixed windows (a burst per second and a
steady rate per minute). The client paces itself below both, per key and endpoint, so a
sync rarely meets a 429; when one comes anyway it waits `Retry-After` seconds. 5xx and
network failures are retried with jittered exponential backoff; 401/403 mean the key was
revoked or lacks a scope, which no retry fixes.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from app.errors import AppError
from app.http import retry_after

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

JSON_API = "application/vnd.api+json"
RETRY_STATUSES = frozenset({500, 502, 503, 504, 524})
MAX_ATTEMPTS = 8
MAX_WAIT_SECONDS = 60.0
BASE_BACKOFF_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class Limit:
    """A Klaviyo rate-limit tier: requests per second (burst) and per minute (steady)."""

    burst: int
    steady: int


# The tiers of the endpoints Stamp calls (reference B4); 700/min as the issue states it,
# the stricter of the two published figures for the profile endpoints.
PROFILES = Limit(burst=75, steady=700)
EVENTS = Limit(burst=350, steady=3500)
JOBS = Limit(burst=10, steady=150)


class KlaviyoError(AppError):
    """Klaviyo refused or could not answer; `retryable` says whether later may help."""

    status_code = 502
    code = "klaviyo_error"
    retryable = False


class KlaviyoAuthError(KlaviyoError):
    """401/403: the private key is wrong, revoked, or lacks a scope Stamp needs."""

    status_code = 422
    code = "klaviyo_key_rejected"


class KlaviyoUnavailable(KlaviyoError):
    """5xx, throttling or the network outlasted every retry."""

    status_code = 503
    code = "klaviyo_unavailable"
    retryable = True


class KlaviyoRejected(KlaviyoError):
    """A 4xx about the request itself (e.g. an invalid email): sending it again won't help."""

    code = "klaviyo_rejected"

    def __init__(self, message: str, errors: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(message)
        self.errors = list(errors)


class Pacer:
    """Sliding one-second and one-minute windows for one key and endpoint.

    A sliding window never exceeds Klaviyo's fixed windows, whatever their alignment.
    """

    def __init__(self, limit: Limit) -> None:
        self.limit = limit
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def _wait(self, now: float) -> float:
        sent = self._sent
        while sent and sent[0] <= now - 60.0:
            sent.popleft()
        wait = 0.0
        if len(sent) >= self.limit.steady:
            wait = sent[-self.limit.steady] + 60.0 - now
        if len(sent) >= self.limit.burst:
            wait = max(wait, sent[-self.limit.burst] + 1.0 - now)
        return wait

    async def acquire(self, clock: Clock, sleep: Sleep) -> None:
        while True:
            with self._lock:
                now = clock()
                wait = self._wait(now)
                if wait <= 0:
                    self._sent.append(now)
                    return
            await sleep(wait)


_pacers: dict[tuple[str, str], Pacer] = {}
_pacers_lock = threading.Lock()


def pacer_for(api_key: str, endpoint: str, limit: Limit) -> Pacer:
    """One pacer per account key and endpoint, shared by every sync in this process."""
    fingerprint = hashlib.sha256(api_key.encode()).hexdigest()[:16]
    with _pacers_lock:
        return _pacers.setdefault((fingerprint, endpoint), Pacer(limit))


def error_detail(response: httpx.Response) -> tuple[str, list[Mapping[str, Any]]]:
    """Klaviyo's own words from a JSON:API error body, and the errors themselves."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300], []
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return str(body)[:300], []
    found = [error for error in errors if isinstance(error, Mapping)]
    text = "; ".join(str(e.get("detail") or e.get("title") or e.get("code")) for e in found)
    return text[:500], found


@dataclass(frozen=True, slots=True)
class JobStatus:
    job_id: str
    status: str
    total: int
    completed: int
    failed: int

    @property
    def done(self) -> bool:
        return self.status in {"complete", "cancelled"}


@dataclass(slots=True)
class KlaviyoClient:
    """Klaviyo for one private key. `requests` counts every HTTP attempt made."""

    http: httpx.AsyncClient
    base_url: str
    api_key: str
    revision: str
    sleep: Sleep = field(default=asyncio.sleep)
    clock: Clock = field(default=time.monotonic)
    jitter: Callable[[], float] = field(default=random.random)
    max_attempts: int = MAX_ATTEMPTS
    requests: int = 0

    @property
    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Klaviyo-API-Key {self.api_key}",
            "revision": self.revision,
            "Accept": JSON_API,
            "Content-Type": JSON_API,
        }

    def backoff(self, attempt: int) -> float:
        """0.5 s doubling per attempt, capped at a minute, jittered between half and all."""
        base = min(BASE_BACKOFF_SECONDS * 2.0 ** (attempt - 1), MAX_WAIT_SECONDS)
        return base * (0.5 + 0.5 * self.jitter())

    async def send(
        self,
        method: str,
        path: str,
        limit: Limit,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        endpoint: str | None = None,
    ) -> httpx.Response:
        """One request, paced and retried; any answer that is not a retryable failure."""
        url = self.base_url.rstrip("/") + path
        content = orjson.dumps(body) if body is not None else None
        pacer = pacer_for(self.api_key, endpoint or f"{method} {path}", limit)
        reason = "no attempt made"
        for attempt in range(1, self.max_attempts + 1):
            await pacer.acquire(self.clock, self.sleep)
            self.requests += 1
            try:
                response = await self.http.request(
                    method, url, content=content, params=params, headers=self.headers
                )
            except httpx.TransportError as exc:
                wait, reason = self.backoff(attempt), f"was unreachable ({type(exc).__name__})"
            else:
                if response.status_code == 429:
                    wait = retry_after(response) or self.backoff(attempt)
                    reason = "answered 429"
                elif response.status_code in RETRY_STATUSES:
                    wait, reason = self.backoff(attempt), f"answered {response.status_code}"
                elif response.status_code in (401, 403):
                    detail, _ = error_detail(response)
                    raise KlaviyoAuthError(
                        f"Klaviyo refused the private key ({response.status_code}: {detail}). "
                        "Create a private key with full access to Profiles, Events and Lists "
                        "and connect Klaviyo again."
                    )
                else:
                    return response
            if attempt < self.max_attempts:
                await self.sleep(wait)
        raise KlaviyoUnavailable(
            f"Klaviyo {reason} on {method} {path} after {self.max_attempts} attempts"
        )

    def _ok(self, response: httpx.Response, what: str) -> Any:
        if response.is_success:
            return response.json() if response.content else {}
        detail, errors = error_detail(response)
        raise KlaviyoRejected(f"Klaviyo refused {what} ({response.status_code}: {detail})", errors)

    async def check_key(self) -> None:
        """One cheap authenticated read: raises KlaviyoAuthError for a bad or revoked key."""
        response = await self.send(
            "GET", "/api/profiles", PROFILES, params={"page[size]": "1"}, endpoint="GET profiles"
        )
        self._ok(response, "the key check")

    async def import_profile(self, profile: Mapping[str, Any]) -> str:
        """Create or update one profile; a 409 duplicate_profile is resolved by a PATCH.

        Returns "created", "updated" or "merged" (patched onto the duplicate).
        """
        response = await self.send("POST", "/api/profile-import", PROFILES, body={"data": profile})
        if response.status_code == 409:
            duplicate = duplicate_profile_id(response)
            if duplicate is not None:
                await self.patch_profile(duplicate, profile)
                return "merged"
        self._ok(response, "the profile")
        return "created" if response.status_code == 201 else "updated"

    async def patch_profile(self, profile_id: str, profile: Mapping[str, Any]) -> None:
        """Set the properties on an existing profile; its identifiers stay as they are."""
        attributes = profile.get("attributes") or {}
        resource: dict[str, Any] = {
            "type": "profile",
            "id": profile_id,
            "attributes": {"properties": attributes.get("properties") or {}},
        }
        if "meta" in profile:
            resource["meta"] = profile["meta"]
        response = await self.send(
            "PATCH",
            f"/api/profiles/{profile_id}",
            PROFILES,
            body={"data": resource},
            endpoint="PATCH profiles",
        )
        self._ok(response, "the profile update")

    async def create_event(self, event: Mapping[str, Any]) -> None:
        response = await self.send("POST", "/api/events", EVENTS, body={"data": event})
        self._ok(response, "the event")

    async def bulk_create_events(self, items: Sequence[Mapping[str, Any]]) -> str:
        """Up to 1,000 events grouped by profile, as one asynchronous job; the job id."""
        body = {
            "data": {
                "type": "event-bulk-create-job",
                "attributes": {"events-bulk-create": {"data": list(items)}},
            }
        }
        response = await self.send("POST", "/api/event-bulk-create-jobs", JOBS, body=body)
        return str(self._ok(response, "the event batch").get("data", {}).get("id", ""))

    async def bulk_import_profiles(self, profiles: Sequence[Mapping[str, Any]]) -> str:
        """Up to 10,000 profiles (5 MB) as one asynchronous import job; the job id."""
        body = {
            "data": {
                "type": "profile-bulk-import-job",
                "attributes": {"profiles": {"data": list(profiles)}},
            }
        }
        response = await self.send("POST", "/api/profile-bulk-import-jobs", JOBS, body=body)
        job_id = self._ok(response, "the profile import").get("data", {}).get("id")
        if not job_id:
            raise KlaviyoRejected("Klaviyo accepted the profile import without a job id")
        return str(job_id)

    async def profile_import_job(self, job_id: str) -> JobStatus:
        response = await self.send(
            "GET",
            f"/api/profile-bulk-import-jobs/{job_id}",
            JOBS,
            endpoint="GET profile-bulk-import-jobs",
        )
        attributes = self._ok(response, "the job status").get("data", {}).get("attributes", {})
        return JobStatus(
            job_id=job_id,
            status=str(attributes.get("status", "")),
            total=int(attributes.get("total_count") or 0),
            completed=int(attributes.get("completed_count") or 0),
            failed=int(attributes.get("failed_count") or 0),
        )

    async def import_errors(self, job_id: str, max_pages: int = 10) -> list[Mapping[str, Any]]:
        """The import errors of a finished job (`attributes.original_payload` names who)."""
        found: list[Mapping[str, Any]] = []
        path: str | None = f"/api/profile-bulk-import-jobs/{job_id}/import-errors"
        for _ in range(max_pages):
            if path is None:
                break
            response = await self.send(
                "GET", path, JOBS, endpoint="GET profile-bulk-import-jobs errors"
            )
            body = self._ok(response, "the import errors")
            found.extend(item for item in body.get("data") or [] if isinstance(item, Mapping))
            following = (body.get("links") or {}).get("next")
            path = _path_of(following) if following else None
        return found


def _path_of(url: str) -> str:
    parsed = httpx.URL(url)
    return parsed.raw_path.decode()


def duplicate_profile_id(response: httpx.Response) -> str | None:
    """`meta.duplicate_profile_id` of a 409 `duplicate_profile` error, wherever it sits."""
    _, errors = error_detail(response)
    for error in errors:
        if error.get("code") != "duplicate_profile":
            continue
        meta = error.get("meta")
        if isinstance(meta, Mapping) and meta.get("duplicate_profile_id"):
            return str(meta["duplicate_profile_id"])
    return None
