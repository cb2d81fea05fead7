"""A small local stand-in for Klaviyo's REST API, on 127.0.0.1 only.

It enforces what the real API documents and Stamp relies on: the key and `revision`
headers, the per-endpoint rate limits in fixed one-second and one-minute windows (429
with `Retry-After`), 10,000 profiles and 5 MB per bulk import job, 1,000 events per bulk
event job. It records every profile (by email, properties set and unset) and every event
once per (profile, metric, unique_id), counting re-sent duplicates instead of keeping
them, as Klaviyo dedupes on `unique_id`. Bulk import jobs complete `job_seconds` after
they are created.

Run it in a thread (`FakeKlaviyo().start()`), or as a process:
`python -m tests.integrations.fake_klaviyo --port 8123` (state at `GET /_fake/state`).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

HOST = "127.0.0.1"
KEY = "pk_fake_0123456789abcdef"
MAX_JOB_PROFILES = 10_000
MAX_JOB_EVENTS = 1_000
MAX_JOB_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limit:
    burst: int
    steady: int


PROFILES = Limit(75, 700)
EVENTS = Limit(350, 3500)
JOBS = Limit(10, 150)


@dataclass(slots=True)
class Job:
    id: str
    profiles: list[dict[str, Any]]
    ready_at: float
    applied: bool = False


@dataclass(slots=True)
class Hold:
    """Delay the answer to the `nth` call of an endpoint (after doing its work) until
    released or `seconds` have passed: the caller sees its request done but no answer."""

    endpoint: str
    nth: int
    seconds: float
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/vnd.api+json",
        headers=headers,
    )


def _error(status: int, code: str, detail: str, **meta: Any) -> Response:
    error: dict[str, Any] = {"id": "fake", "status": status, "code": code, "title": code}
    error["detail"] = detail
    if meta:
        error["meta"] = meta
    return _json(status, {"errors": [error]})


def _throttled(seconds: float) -> Response:
    """429 without RateLimit-* headers, with Retry-After in whole seconds (as Klaviyo)."""
    response = _error(429, "throttled", "Request was throttled.")
    response.headers["Retry-After"] = str(max(1, math.ceil(seconds)))
    return response


class FakeKlaviyo:
    def __init__(
        self,
        *,
        keys: set[str] | None = None,
        job_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys = set(keys or {KEY})
        self.job_seconds = job_seconds
        self.clock = clock
        self.lock = threading.Lock()
        self.profiles: dict[str, dict[str, Any]] = {}
        self.profile_ids: dict[str, str] = {}
        self.events: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.duplicate_events = 0
        self.requests: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
        self.jobs: dict[str, Job] = {}
        self.conflicts: dict[str, str] = {}  # email -> id of another profile that owns it
        self.holds: list[Hold] = []
        self._windows: dict[tuple[str, str, int], int] = {}
        self._ids = itertools.count(1)
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None
        self.port = 0
        self.app = Starlette(
            routes=[
                Route("/api/profiles", self.get_profiles, methods=["GET"]),
                Route("/api/profiles/{profile_id}", self.patch_profile, methods=["PATCH"]),
                Route("/api/profile-import", self.profile_import, methods=["POST"]),
                Route("/api/profile-bulk-import-jobs", self.create_job, methods=["POST"]),
                Route("/api/profile-bulk-import-jobs/{job_id}", self.get_job, methods=["GET"]),
                Route(
                    "/api/profile-bulk-import-jobs/{job_id}/import-errors",
                    self.import_errors,
                    methods=["GET"],
                ),
                Route("/api/events", self.create_event, methods=["POST"]),
                Route("/api/event-bulk-create-jobs", self.create_event_job, methods=["POST"]),
                Route("/_fake/state", self.dump_state, methods=["GET"]),
            ]
        )

    # --- running --------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> FakeKlaviyo:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]})
        self.thread.daemon = True
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake Klaviyo did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(timeout=10)

    # --- what tests read ------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Profiles (with finished jobs applied), events and counters, as plain data."""
        with self.lock:
            self._apply_ready_jobs()
            return {
                "profiles": {email: dict(props) for email, props in self.profiles.items()},
                "events": [
                    {"email": e, "metric": m, "unique_id": u, **body}
                    for (e, m, u), body in self.events.items()
                ],
                "duplicate_events": self.duplicate_events,
                "requests": dict(self.requests),
                "throttled": dict(self.throttled),
                "total_requests": sum(self.requests.values()),
            }

    def hold(self, endpoint: str, nth: int, seconds: float) -> Hold:
        hold = Hold(endpoint, nth, seconds)
        self.holds.append(hold)
        return hold

    # --- the API --------------------------------------------------------------------------

    async def _gate(self, request: Request, endpoint: str, limit: Limit) -> Response | None:
        """Count, authenticate, rate-limit; a response when the request is refused."""
        now = self.clock()
        with self.lock:
            self.requests[endpoint] += 1
            second, minute = int(now), int(now // 60)
            burst_key, steady_key = (endpoint, "s", second), (endpoint, "m", minute)
            if self._windows.get(burst_key, 0) >= limit.burst:
                self.throttled[endpoint] += 1
                return _throttled(second + 1 - now)
            if self._windows.get(steady_key, 0) >= limit.steady:
                self.throttled[endpoint] += 1
                return _throttled((minute + 1) * 60 - now)
            self._windows[burst_key] = self._windows.get(burst_key, 0) + 1
            self._windows[steady_key] = self._windows.get(steady_key, 0) + 1
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Klaviyo-API-Key ") or auth.split(" ", 1)[1] not in self.keys:
            return _error(401, "not_authenticated", "Incorrect authentication credentials.")
        if not request.headers.get("revision"):
            return _error(400, "invalid", "The revision header is required.")
        return None

    async def _held(self, endpoint: str) -> None:
        for hold in self.holds:
            if hold.endpoint == endpoint and self.requests[endpoint] == hold.nth:
                hold.reached.set()
                await asyncio.to_thread(hold.released.wait, hold.seconds)

    async def get_profiles(self, request: Request) -> Response:
        refused = await self._gate(request, "GET /api/profiles", PROFILES)
        return refused or _json(200, {"data": [], "links": {}})

    async def profile_import(self, request: Request) -> Response:
        endpoint = "POST /api/profile-import"
        refused = await self._gate(request, endpoint, PROFILES)
        if refused:
            return refused
        resource = orjson.loads(await request.body())["data"]
        email = resource["attributes"]["email"]
        with self.lock:
            if email in self.conflicts:
                return _error(
                    409,
                    "duplicate_profile",
                    "A profile already exists with one of these identifiers.",
                    duplicate_profile_id=self.conflicts[email],
                )
            created = email not in self.profiles
            self._upsert(resource)
            profile_id = self.profile_ids[email]
        await self._held(endpoint)
        return _json(201 if created else 200, {"data": {"type": "profile", "id": profile_id}})

    async def patch_profile(self, request: Request) -> Response:
        refused = await self._gate(request, "PATCH /api/profiles", PROFILES)
        if refused:
            return refused
        profile_id = request.path_params["profile_id"]
        resource = orjson.loads(await request.body())["data"]
        with self.lock:
            email = next((e for e, i in self.conflicts.items() if i == profile_id), None)
            email = email or next((e for e, i in self.profile_ids.items() if i == profile_id), None)
            if email is None:
                return _error(404, "not_found", "No such profile.")
            self.profile_ids[email] = profile_id
            self._apply(email, resource)
        return _json(200, {"data": {"type": "profile", "id": profile_id}})

    async def create_job(self, request: Request) -> Response:
        endpoint = "POST /api/profile-bulk-import-jobs"
        refused = await self._gate(request, endpoint, JOBS)
        if refused:
            return refused
        raw = await request.body()
        if len(raw) > MAX_JOB_BYTES:
            return _error(413, "payload_too_large", f"{len(raw)} bytes is over 5 MB.")
        profiles = orjson.loads(raw)["data"]["attributes"]["profiles"]["data"]
        if len(profiles) > MAX_JOB_PROFILES:
            return _error(400, "invalid", f"{len(profiles)} profiles is over 10,000.")
        with self.lock:
            job = Job(f"job{next(self._ids)}", profiles, self.clock() + self.job_seconds)
            self.jobs[job.id] = job
        await self._held(endpoint)
        return _json(202, {"data": {"type": "profile-bulk-import-job", "id": job.id}})

    async def get_job(self, request: Request) -> Response:
        refused = await self._gate(request, "GET /api/profile-bulk-import-jobs", JOBS)
        if refused:
            return refused
        with self.lock:
            self._apply_ready_jobs()
            job = self.jobs.get(request.path_params["job_id"])
            if job is None:
                return _error(404, "not_found", "No such job.")
            count = len(job.profiles)
            attributes = {
                "status": "complete" if job.applied else "queued",
                "total_count": count,
                "completed_count": count if job.applied else 0,
                "failed_count": 0,
            }
        return _json(
            200,
            {"data": {"type": "profile-bulk-import-job", "id": job.id, "attributes": attributes}},
        )

    async def import_errors(self, request: Request) -> Response:
        refused = await self._gate(request, "GET /api/profile-bulk-import-jobs errors", JOBS)
        return refused or _json(200, {"data": [], "links": {}})

    async def create_event(self, request: Request) -> Response:
        endpoint = "POST /api/events"
        refused = await self._gate(request, endpoint, EVENTS)
        if refused:
            return refused
        attributes = orjson.loads(await request.body())["data"]["attributes"]
        email = attributes["profile"]["data"]["attributes"]["email"]
        with self.lock:
            self._record_event(email, attributes)
        await self._held(endpoint)
        return Response(status_code=202)

    async def create_event_job(self, request: Request) -> Response:
        endpoint = "POST /api/event-bulk-create-jobs"
        refused = await self._gate(request, endpoint, JOBS)
        if refused:
            return refused
        raw = await request.body()
        if len(raw) > MAX_JOB_BYTES:
            return _error(413, "payload_too_large", f"{len(raw)} bytes is over 5 MB.")
        items = orjson.loads(raw)["data"]["attributes"]["events-bulk-create"]["data"]
        total = sum(len(item["attributes"]["events"]["data"]) for item in items)
        if total > MAX_JOB_EVENTS:
            return _error(400, "invalid", f"{total} events is over 1,000.")
        with self.lock:
            for item in items:
                email = item["attributes"]["profile"]["data"]["attributes"]["email"]
                for event in item["attributes"]["events"]["data"]:
                    self._record_event(email, event["attributes"])
            job_id = f"events{next(self._ids)}"
        await self._held(endpoint)
        return _json(202, {"data": {"type": "event-bulk-create-job", "id": job_id}})

    async def dump_state(self, request: Request) -> Response:
        return _json(200, self.snapshot())

    # --- storage (callers hold the lock) -------------------------------------------------

    def _upsert(self, resource: dict[str, Any]) -> None:
        email = resource["attributes"]["email"]
        if email not in self.profile_ids:
            self.profile_ids[email] = f"P{next(self._ids)}"
        self._apply(email, resource)

    def _apply(self, email: str, resource: dict[str, Any]) -> None:
        properties = self.profiles.setdefault(email, {})
        properties.update(resource["attributes"].get("properties") or {})
        unset = ((resource.get("meta") or {}).get("patch_properties") or {}).get("unset") or []
        for name in unset:
            properties.pop(name, None)

    def _apply_ready_jobs(self) -> None:
        now = self.clock()
        for job in self.jobs.values():
            if not job.applied and job.ready_at <= now:
                for resource in job.profiles:
                    self._upsert(resource)
                job.applied = True

    def _record_event(self, email: str, attributes: dict[str, Any]) -> None:
        metric = attributes["metric"]["data"]["attributes"]["name"]
        key = (email, metric, attributes["unique_id"])
        if key in self.events:
            self.duplicate_events += 1
            return
        self.events[key] = {"properties": attributes["properties"], "time": attributes.get("time")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--job-seconds", type=float, default=0.0)
    args = parser.parse_args()
    fake = FakeKlaviyo(job_seconds=args.job_seconds)
    uvicorn.run(fake.app, host=HOST, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
