"""A small Admin GraphQL client over the shared `state.http` client.

Shopify meters GraphQL by calculated query cost in a leaky bucket per app and store. A
throttled request comes back as HTTP 200 with `errors[].extensions.code == "THROTTLED"`
(or, rarely, HTTP 429); the client then waits for the bucket to refill enough for the
query, using `extensions.cost.throttleStatus` (`currentlyAvailable`, `restoreRate`) and the
`requestedQueryCost`, and retries. Nothing about the bucket is hard-coded: plans differ.

Other GraphQL `errors` and any mutation `userErrors` raise `AdminError` with Shopify's own
words, so a caller never mistakes a refused request for an empty answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.db import unit_of_work
from app.errors import AppError
from app.models import Shop
from app.shops.tokens import ReauthorizationRequired, access_token
from app.state import State

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
TokenProvider = Callable[[], Awaitable[str]]

DEFAULT_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 60.0
MAX_ATTEMPTS = 8


class AdminError(AppError):
    """Shopify refused or could not answer an Admin API request.

    `retryable` tells a job whether trying the same request later can help.
    """

    status_code = 502
    code = "shopify_admin_error"
    retryable = False


class AdminUnavailable(AdminError):
    """Network errors, 5xx, or throttling that outlasted every retry: try again later."""

    status_code = 503
    code = "shopify_unavailable"
    retryable = True


class GraphQLErrors(AdminError):
    """The response's top-level `errors` (a bad query, missing scope, unknown field...)."""

    code = "shopify_graphql_errors"

    def __init__(self, message: str, errors: Sequence[Mapping[str, Any]]) -> None:
        super().__init__(message)
        self.errors = list(errors)


class UserErrors(AdminError):
    """A mutation answered with `userErrors`: Shopify understood it and said no."""

    code = "shopify_user_errors"

    def __init__(self, message: str, mutation: str, errors: Sequence[Mapping[str, Any]]) -> None:
        super().__init__(message)
        self.mutation = mutation
        self.errors = list(errors)


def legacy_id(gid: str) -> str:
    """`gid://shopify/Order/123` → `"123"`: the plain numeric id webhooks carry."""
    if not isinstance(gid, str) or not gid.startswith("gid://"):
        raise ValueError(f"{gid!r} is not a Shopify global id")
    tail = gid.rsplit("/", 1)[-1].split("?", 1)[0]
    if not tail.isdigit():
        raise ValueError(f"{gid!r} does not end in a numeric id")
    return tail


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def throttle_wait(body: Mapping[str, Any] | None, attempt: int) -> float:
    """Seconds until the bucket holds enough for the query again.

    `(requestedQueryCost - currentlyAvailable) / restoreRate` when Shopify reported its
    bucket, else an exponential fallback; never below 0.5 s nor above a minute.
    """
    fallback: float = min(DEFAULT_BACKOFF_SECONDS * 2.0 ** (attempt - 1), MAX_BACKOFF_SECONDS)
    extensions = (body or {}).get("extensions")
    cost = extensions.get("cost") if isinstance(extensions, Mapping) else None
    if not isinstance(cost, Mapping) or not isinstance(cost.get("throttleStatus"), Mapping):
        return fallback
    requested = _number(cost.get("requestedQueryCost"))
    available = _number(cost["throttleStatus"].get("currentlyAvailable"))
    rate = _number(cost["throttleStatus"].get("restoreRate"))
    if requested is None or available is None or rate is None or rate <= 0:
        return fallback
    return min(max((requested - available) / rate, 0.5), MAX_BACKOFF_SECONDS)


def _is_throttled(body: Mapping[str, Any]) -> bool:
    errors = body.get("errors")
    if not isinstance(errors, list):
        return False
    return any(
        isinstance(error, Mapping)
        and isinstance(error.get("extensions"), Mapping)
        and error["extensions"].get("code") == "THROTTLED"
        for error in errors
    )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return min(max(float(value), 0.0), MAX_BACKOFF_SECONDS) if value else None
    except ValueError:
        return None


def _error_messages(errors: Sequence[Any]) -> str:
    messages = [
        str(error.get("message")) if isinstance(error, Mapping) else str(error) for error in errors
    ]
    return "; ".join(messages)[:500]


def _raise_user_errors(data: Mapping[str, Any]) -> None:
    """Mutation payloads sit at the top of `data`; any non-empty `userErrors` is a refusal."""
    for name, payload in data.items():
        if not isinstance(payload, Mapping):
            continue
        errors = payload.get("userErrors")
        if errors:
            details = "; ".join(
                f"{'.'.join(map(str, error.get('field') or [])) or '-'}: {error.get('message')}"
                if isinstance(error, Mapping)
                else str(error)
                for error in errors
            )
            raise UserErrors(f"Shopify refused {name}: {details}"[:500], name, errors)


@dataclass(frozen=True, slots=True)
class _Retry:
    wait: float
    reason: str


@dataclass(slots=True)
class AdminClient:
    """Admin GraphQL for one shop. `token` is awaited before every request (it may refresh)."""

    state: State
    shop_domain: str
    token: TokenProvider
    sleep: Sleep = field(default=asyncio.sleep)
    max_attempts: int = MAX_ATTEMPTS

    @property
    def url(self) -> str:
        settings = self.state.settings
        return (
            f"{settings.shopify_admin_base(self.shop_domain)}/admin/api/"
            f"{settings.SHOPIFY_API_VERSION}/graphql.json"
        )

    async def execute(self, query: str, variables: Mapping[str, Any] | None = None) -> Any:
        """Run a query or mutation and return its `data`, retrying throttles and outages."""
        body: dict[str, Any] = {"query": query}
        if variables:
            body["variables"] = dict(variables)
        reason = "no attempt made"
        for attempt in range(1, self.max_attempts + 1):
            outcome = await self._attempt(body, attempt)
            if isinstance(outcome, _Retry):
                reason = outcome.reason
                if attempt < self.max_attempts:
                    logger.info(
                        "Shopify %s for %s; retrying in %.2fs",
                        reason,
                        self.shop_domain,
                        outcome.wait,
                    )
                    await self.sleep(outcome.wait)
                continue
            return outcome
        raise AdminUnavailable(
            f"Shopify kept refusing requests for {self.shop_domain} ({reason}) after "
            f"{self.max_attempts} attempts; try again later"
        )

    async def _attempt(self, body: Mapping[str, Any], attempt: int) -> Mapping[str, Any] | _Retry:
        """The response's `data`, or how long to wait when a retry can help."""
        headers = {
            "X-Shopify-Access-Token": await self.token(),
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        try:
            response = await self.state.http.post(self.url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            return _Retry(throttle_wait(None, attempt), f"was unreachable ({type(exc).__name__})")
        payload = self._json(response)
        if response.status_code == 429:
            wait = _retry_after(response) or throttle_wait(payload, attempt)
            return _Retry(wait, "answered 429")
        if response.status_code >= 500:
            return _Retry(throttle_wait(None, attempt), f"answered {response.status_code}")
        if not response.is_success:
            detail = _error_messages(payload.get("errors") or []) if payload else ""
            raise AdminError(
                f"Shopify answered {response.status_code} for {self.shop_domain}"
                + (f": {detail}" if detail else ""),
                status_code=502,
            )
        if payload is None:
            raise AdminError(f"Shopify's answer for {self.shop_domain} was not JSON")
        if _is_throttled(payload):
            return _Retry(throttle_wait(payload, attempt), "throttled the request")
        errors = payload.get("errors")
        if errors:
            raise GraphQLErrors(
                f"Shopify rejected the query for {self.shop_domain}: "
                f"{_error_messages(errors if isinstance(errors, list) else [errors])}",
                errors if isinstance(errors, list) else [{"message": str(errors)}],
            )
        data = payload.get("data")
        if not isinstance(data, Mapping):
            raise AdminError(f"Shopify's answer for {self.shop_domain} had no data")
        _raise_user_errors(data)
        return data

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any] | None:
        try:
            payload = response.json()
        except ValueError:
            return None
        return payload if isinstance(payload, dict) else None


async def client_for_shop(state: State, shop_id: int, sleep: Sleep = asyncio.sleep) -> AdminClient:
    """A client whose token is read (and refreshed when due) in its own short transaction.

    Long jobs outlive an expiring token (60 minutes), so the token is fetched per request
    rather than once; each fetch commits any refresh at once and holds no lock afterwards.
    """
    async with state.sessionmaker() as session:
        shop = await session.get(Shop, shop_id)
        if shop is None:
            raise ReauthorizationRequired(f"No shop with id {shop_id}")
        domain = shop.domain

    async def token() -> str:
        async with unit_of_work(state.sessionmaker) as session:
            current = await session.get(Shop, shop_id)
            if current is None:
                raise ReauthorizationRequired(f"{domain} no longer exists")
            return await access_token(state, session, current)

    return AdminClient(state=state, shop_domain=domain, token=token, sleep=sleep)
