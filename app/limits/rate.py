"""Rate limits on the public storefront endpoints: one token bucket per client.

Who the client is (`client_key`):
- an app-proxy request (`/proxy/...`) whose Shopify signature verifies and names a
  `logged_in_customer_id` is that shopper of that shop (Shopify set the id, so it cannot
  be forged, and shoppers behind one NAT do not share a bucket);
- anyone else is their IP address. `X-Forwarded-For` is trusted only as far as proxies we
  run append to it: with `TRUSTED_PROXY_HOPS = n`, the client is the n-th address from the
  right (the one our outermost proxy saw); with 0 it is the socket's peer and the header is
  ignored. A signed app-proxy request went through Shopify's proxy too, which appends the
  shopper's address, so it counts as one more trusted hop. Addresses further left were
  written by the client and are never used: a client cannot pick its own bucket.

Buckets live in process by default, and in Redis (`RATE_LIMIT_URL`, else a Redis
`QUEUE_URL`) so several web processes share them. If Redis fails the limiter falls back to
the in-process buckets rather than refusing shoppers.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote_plus

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Receive, Scope, Send

from app.integrations.shopify.signing import APP_PROXY_VERIFIED_QUERY, verify_app_proxy

logger = logging.getLogger("stamp.limits")

PROXY_PREFIX = "/proxy/"
WOO_PREFIX = "/woo/api/"
LIMITED_PREFIXES = (PROXY_PREFIX, WOO_PREFIX)


@dataclass(frozen=True, slots=True)
class Bucket:
    tokens: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    bucket: Bucket
    retry_after: float


def take(bucket: Bucket | None, now: float, rate: float, burst: int) -> Decision:
    """Refill for the time elapsed, then spend one token if there is one."""
    if bucket is None:
        tokens = float(burst)
    else:
        elapsed = max(0.0, now - bucket.updated_at)
        tokens = min(float(burst), bucket.tokens + elapsed * rate)
    if tokens >= 1.0:
        return Decision(True, Bucket(tokens - 1.0, now), 0.0)
    return Decision(False, Bucket(tokens, now), (1.0 - tokens) / rate)


def retry_after_header(seconds: float) -> str:
    """Whole seconds, never 0: a client told to retry after 0 would retry at once."""
    return str(max(1, math.ceil(seconds)))


class Backend(Protocol):
    async def take(self, key: str, rate: float, burst: int) -> Decision: ...

    async def aclose(self) -> None: ...


class MemoryBackend:
    """Buckets in this process; the least recently seen are dropped past `max_keys`."""

    def __init__(
        self, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_keys = max_keys
        self.clock = clock
        self.buckets: OrderedDict[str, Bucket] = OrderedDict()

    async def take(self, key: str, rate: float, burst: int) -> Decision:
        decision = take(self.buckets.get(key), self.clock(), rate, burst)
        self.buckets[key] = decision.bucket
        self.buckets.move_to_end(key)
        if len(self.buckets) > self.max_keys:
            self.buckets.popitem(last=False)
        return decision

    async def aclose(self) -> None:
        self.buckets.clear()


# The same arithmetic as `take`, atomically in Redis, on Redis's clock (one clock for all
# web processes). Returns {allowed, tokens * 1000, retry_after * 1000}.
_TAKE_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'updated_at')
local tokens = burst
if saved[1] then
  local elapsed = math.max(0, now - tonumber(saved[2]))
  tokens = math.min(burst, tonumber(saved[1]) + elapsed * rate)
end
local allowed = 0
local retry_after = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry_after = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated_at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, math.floor(tokens * 1000), math.ceil(retry_after * 1000)}
"""


class RedisBackend:
    """Buckets shared by every web process; on a Redis failure, the in-process fallback.

    After a failure Redis is left alone for `retry_after_failure` seconds, so an outage
    costs shoppers one connect timeout per process, not one per request.
    """

    def __init__(
        self,
        url: str,
        prefix: str = "stamp:ratelimit:",
        retry_after_failure: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25)
        self.prefix = prefix
        self.fallback = MemoryBackend(clock=clock)
        self.script = self.redis.register_script(_TAKE_SCRIPT)
        self.retry_after_failure = retry_after_failure
        self.clock = clock
        self.down_until = 0.0

    async def take(self, key: str, rate: float, burst: int) -> Decision:
        if self.clock() < self.down_until:
            return await self.fallback.take(key, rate, burst)
        try:
            allowed, tokens, retry_ms = await self.script(
                keys=[self.prefix + key], args=[rate, burst]
            )
        except (RedisError, OSError) as exc:
            logger.warning("rate limit store unavailable, limiting in process: %s", exc)
            self.down_until = self.clock() + self.retry_after_failure
            return await self.fallback.take(key, rate, burst)
        return Decision(bool(allowed), Bucket(int(tokens) / 1000, 0.0), int(retry_ms) / 1000)

    async def aclose(self) -> None:
        await self.redis.aclose()


def create_backend(redis_url: str | None, prefix: str = "stamp:ratelimit:") -> Backend:
    return RedisBackend(redis_url, prefix) if redis_url else MemoryBackend()


def query_items(raw: bytes) -> list[tuple[str, str]]:
    """The query as `parse_qsl(keep_blank_values=True)` reads it, without its per-call cost:
    only the parts that are escaped are unescaped (this runs on every widget request)."""
    items: list[tuple[str, str]] = []
    for part in raw.decode("latin-1").split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        if "%" in key or "+" in key:
            key = unquote_plus(key)
        if "%" in value or "+" in value:
            value = unquote_plus(value)
        items.append((key, value))
    return items


def client_address(peer: str | None, forwarded_for: str | None, trusted_hops: int) -> str | None:
    """The address the outermost trusted proxy saw (see the module docstring)."""
    if trusted_hops <= 0:
        return peer
    hops = [part.strip() for part in (forwarded_for or "").split(",") if part.strip()]
    if not hops:
        return peer
    return hops[-trusted_hops] if len(hops) >= trusted_hops else hops[0]


def client_key(
    path: str,
    query: Iterable[tuple[str, str]],
    peer: str | None,
    forwarded_for: str | None,
    *,
    secret: str,
    trusted_hops: int,
    verified: bool | None = None,
) -> str:
    """`customer:<shop>:<id>` for a signed-in shopper behind the app proxy, else `ip:<addr>`.

    `verified` is the app-proxy signature check's result when the caller made it already.
    """
    if path.startswith(PROXY_PREFIX):
        params = list(query)
        if verified if verified is not None else verify_app_proxy(secret, params):
            values = dict(params)
            customer = values.get("logged_in_customer_id")
            if customer:
                return f"customer:{values.get('shop', '')}:{customer}"
            return "ip:" + str(client_address(peer, forwarded_for, trusted_hops + 1))
    return "ip:" + str(client_address(peer, forwarded_for, trusted_hops))


class StorefrontRateLimit:
    """429 with `Retry-After` once a client's bucket is empty; other paths pass untouched."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        secret: str,
        rate: float,
        burst: int,
        redis_url: str | None = None,
        trusted_hops: int = 0,
        key_prefix: str = "stamp:ratelimit:",
        backend: Backend | None = None,
    ) -> None:
        self.app = app
        self.secret = secret
        self.rate = rate
        self.burst = burst
        self.redis_url = redis_url
        self.trusted_hops = trusted_hops
        self.key_prefix = key_prefix
        self._backend: Backend | None = backend

    @property
    def backend(self) -> Backend:
        """Built on first use, inside the event loop that serves requests."""
        if self._backend is None:
            self._backend = create_backend(self.redis_url, self.key_prefix)
        return self._backend

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            try:
                await self.app(scope, receive, send)
            finally:
                if self._backend is not None:
                    await self._backend.aclose()
                    self._backend = None
            return
        if (
            scope["type"] != "http"
            or self.rate <= 0
            or scope["method"] == "OPTIONS"
            or not scope["path"].startswith(LIMITED_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        client = scope.get("client")
        raw_query = scope.get("query_string", b"")
        params = query_items(raw_query)
        verified = scope["path"].startswith(PROXY_PREFIX) and verify_app_proxy(self.secret, params)
        if verified:
            # The app-proxy endpoints trust this instead of checking the signature again.
            scope[APP_PROXY_VERIFIED_QUERY] = raw_query
        key = client_key(
            scope["path"],
            params,
            client[0] if client else None,
            _text(headers.get(b"x-forwarded-for")),
            secret=self.secret,
            trusted_hops=self.trusted_hops,
            verified=verified,
        )
        decision = await self.backend.take(key, self.rate, self.burst)
        if decision.allowed:
            await self.app(scope, receive, send)
            return
        await _too_many(send, decision.retry_after, _text(headers.get(b"origin")))


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


async def _too_many(send: Send, retry_after: float, origin: str | None) -> None:
    body = orjson.dumps(
        {"error": {"code": "rate_limited", "message": "Too many requests; slow down"}}
    )
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", retry_after_header(retry_after).encode()),
        (b"cache-control", b"private, no-store"),
    ]
    if origin and origin.startswith("https://"):
        # The WooCommerce widget calls cross-origin and must be able to read the refusal.
        headers.append((b"access-control-allow-origin", origin.encode("latin-1")))
        headers.append((b"vary", b"Origin"))
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body})
