"""A small Judge.me REST client over the shared `state.http` client.

Judge.me authenticates with query parameters (`shop_domain`, `api_token`); the private
token can read and write, so it never leaves the server. Rate limits are not published:
429 waits `Retry-After` (or backs off), 5xx and network failures back off, a few times.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.errors import AppError
from app.http import retry_after

Sleep = Callable[[float], Awaitable[None]]

WEBHOOK_KEYS = ("review/created", "review/updated")
MAX_ATTEMPTS = 4


class JudgemeError(AppError):
    status_code = 502
    code = "judgeme_error"
    retryable = False


class JudgemeAuthError(JudgemeError):
    """401/403: the token is wrong, revoked or not a private token."""

    status_code = 422
    code = "judgeme_token_rejected"


class JudgemeUnavailable(JudgemeError):
    status_code = 503
    code = "judgeme_unavailable"
    retryable = True


@dataclass(slots=True)
class JudgemeClient:
    http: httpx.AsyncClient
    base_url: str
    shop_domain: str
    token: str
    sleep: Sleep = field(default=asyncio.sleep)
    max_attempts: int = MAX_ATTEMPTS

    async def _send(
        self, method: str, path: str, *, json: Mapping[str, Any] | None = None
    ) -> httpx.Response:
        url = self.base_url.rstrip("/") + path
        params = {"shop_domain": self.shop_domain, "api_token": self.token}
        reason = "no attempt made"
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = await self.http.request(method, url, params=params, json=json)
            except httpx.TransportError as exc:
                wait, reason = 2.0**attempt, f"was unreachable ({type(exc).__name__})"
            else:
                if response.status_code in (401, 403):
                    raise JudgemeAuthError(
                        f"Judge.me refused the API token ({response.status_code}). Use the "
                        "private API token from Judge.me > Settings > Integrations."
                    )
                if response.status_code != 429 and response.status_code < 500:
                    return response
                wait = retry_after(response) or 2.0**attempt
                reason = f"answered {response.status_code}"
            if attempt < self.max_attempts:
                await self.sleep(wait)
        raise JudgemeUnavailable(f"Judge.me {reason} on {method} {path}")

    async def register_webhook(self, key: str, url: str) -> None:
        """Subscribe `url` to a webhook key; one already registered counts as done."""
        response = await self._send("POST", "/webhooks", json={"webhook": {"key": key, "url": url}})
        if response.is_success:
            return
        text = response.text.lower()
        if response.status_code in (409, 422) and any(
            word in text for word in ("already", "taken", "exists")
        ):
            return
        raise JudgemeError(
            f"Judge.me refused the {key} webhook ({response.status_code}: {response.text[:300]})"
        )

    async def get_review(self, review_id: str) -> Mapping[str, Any] | None:
        """The review as Judge.me has it now, or None when it no longer exists."""
        response = await self._send("GET", f"/reviews/{review_id}")
        if response.status_code == 404:
            return None
        if not response.is_success:
            raise JudgemeError(f"Judge.me answered {response.status_code} for review {review_id}")
        body = response.json()
        if not isinstance(body, Mapping):
            raise JudgemeError(f"Judge.me's answer for review {review_id} was not an object")
        review = body.get("review", body)
        return review if isinstance(review, Mapping) else None
