"""Helpers for the admin page tests: signing in either way, and reading pages back."""

from __future__ import annotations

import re

import httpx

from app.admin import auth
from app.models import Shop
from app.settings import Settings
from tests.shops.support import session_token

OTHER = "other-shop.myshopify.com"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def bearer(settings: Settings, shop: Shop) -> dict[str, str]:
    """Headers of an App Bridge fetch for `shop` (a fresh session token)."""
    return {"Authorization": f"Bearer {session_token(settings, shop.domain)}"}


async def sign_in(client: httpx.AsyncClient, settings: Settings, shop: Shop) -> str:
    """Open a login link for `shop` (the client keeps the cookie); returns the CSRF token."""
    link = auth.login_link(settings, shop)
    opened = await client.get(link)
    assert opened.status_code == 303, opened.text
    page = await client.get("/admin/import")
    assert page.status_code == 200, page.text
    found = _CSRF.search(page.text)
    assert found is not None
    return found.group(1)


def field_error(html: str, name: str) -> str | None:
    """The message shown next to field `name`, if any."""
    found = re.search(rf'id="{re.escape(name)}-error"[^>]*>([^<]*)<', html)
    return found.group(1) if found else None
