"""Segment's HTTP Tracking API (`https://api.segment.io/v1`) for one source write key.

Auth is HTTP Basic with the write key as user name and no password. `/batch` takes up to
500 KB per request and 32 KB per message; Segment dedupes on `messageId`. 429 and 5xx
are retried like the Klaviyo client does (Retry-After, else jittered backoff); 401/403
mean the write key is wrong.
"""

from __future__ import annotations

import asyncio
import random
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

MAX_BATCH_BYTES = 500_000 - 1_000
MAX_MESSAGE_BYTES = 32_000


class SegmentError(AppError):
    status_code = 502
    code = "segment_error"


class SegmentAuthError(SegmentError):
    status_code = 422
    code = "segment_write_key_rejected"


class SegmentRejected(SegmentError):
    code = "segment_rejected"


@dataclass(slots=True)
class SegmentClient:
    http: httpx.AsyncClient
    base_url: str
    write_key: str
    sleep: Sleep = field(default=asyncio.sleep)
    jitter: Callable[[], float] = field(default=random.random)
    max_attempts: int = 6
    requests: int = 0

    def backoff(self, attempt: int) -> float:
        base = min(BASE_BACKOFF_SECONDS * 2.0 ** (attempt - 1), MAX_WAIT_SECONDS)
        return base * (0.5 + 0.5 * self.jitter())

    async def post(self, path: str, body: Mapping[str, Any]) -> None:
        url = self.base_url.rstrip("/") + path
        content = orjson.dumps(body)
        reason = "no attempt made"
        for attempt in range(1, self.max_attempts + 1):
            self.requests += 1
            try:
                response = await self.http.post(
                    url,
                    content=content,
                    auth=(self.write_key, ""),
                    headers={"Content-Type": "application/json"},
                )
            except httpx.TransportError as exc:
                wait, reason = self.backoff(attempt), f"was unreachable ({type(exc).__name__})"
            else:
                if response.status_code == 429:
                    wait, reason = retry_after(response) or self.backoff(attempt), "answered 429"
                elif response.status_code in RETRY_STATUSES:
                    wait, reason = self.backoff(attempt), f"answered {response.status_code}"
                elif response.status_code in (401, 403):
                    raise SegmentAuthError(
                        f"Segment refused the write key ({response.status_code}); copy the "
                        "HTTP API source's write key and connect Segment again."
                    )
                elif response.is_success:
                    return
                else:
                    raise SegmentRejected(
                        f"Segment refused {path} ({response.status_code}: {response.text[:300]})"
                    )
            if attempt < self.max_attempts:
                await self.sleep(wait)
        raise SegmentError(f"Segment {reason} on POST {path} after {self.max_attempts} attempts")

    async def identify(self, message: Mapping[str, Any]) -> None:
        await self.post("/identify", message)

    async def batch(self, messages: Sequence[Mapping[str, Any]]) -> None:
        await self.post("/batch", {"batch": list(messages)})
