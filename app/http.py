"""The one outbound HTTP client, and the guard for URLs a merchant supplies."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import httpx

from app.errors import ValidationFailed
from app.settings import Settings


def create_http_client(settings: Settings) -> httpx.AsyncClient:
    """Explicit timeouts and no redirects: a merchant-supplied host must not bounce us elsewhere."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.HTTP_TIMEOUT_SECONDS, connect=5.0),
        follow_redirects=False,
        headers={"User-Agent": "Stamp/0.1 (+https://github.com/stamp-loyalty/stamp)"},
    )


MAX_RETRY_AFTER_SECONDS = 60.0


def retry_after(response: httpx.Response) -> float | None:
    """A 429's `Retry-After` in seconds (capped at a minute), or None when it has none."""
    value = response.headers.get("Retry-After")
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_SECONDS) if value else None
    except ValueError:
        return None


def check_public_url(url: str, settings: Settings) -> str:
    """Refuse merchant-supplied URLs that point at private, loopback or link-local addresses."""
    parts = urlsplit(url)
    if parts.scheme != "https" and not settings.ALLOW_PRIVATE_URLS:
        raise ValidationFailed("The URL must start with https://", code="url_not_https")
    if not parts.hostname:
        raise ValidationFailed("The URL has no host name", code="url_invalid")
    if settings.ALLOW_PRIVATE_URLS:
        return url
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise ValidationFailed(
            f"The host {parts.hostname} could not be resolved", code="url_unresolvable"
        ) from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise ValidationFailed(
                f"The host {parts.hostname} points at a private address", code="url_private"
            )
    return url
