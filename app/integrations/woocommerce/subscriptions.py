"""Stamp's webhooks on a WooCommerce store: created at connect, re-enabled when disabled.

WooCommerce disables a webhook after repeated failed deliveries and never turns it back
on, so the reconcile job calls `ensure_webhooks` too: anything of ours that is not active
is set active again (with the current secret), and any missing topic is created.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.integrations.woocommerce.client import WooClient, WooError
from app.settings import Settings

TOPICS: tuple[str, ...] = (
    "order.created",
    "order.updated",
    "order.deleted",
    "order.restored",
    "customer.created",
)
WEBHOOK_NAME = "Stamp loyalty"


def delivery_url(settings: Settings, shop_id: int) -> str:
    return settings.external_url(f"/webhooks/woocommerce/{shop_id}")


@dataclass(frozen=True, slots=True)
class WebhookSync:
    created: tuple[str, ...]
    reactivated: tuple[str, ...]


async def _ours(client: WooClient, url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    page = 1
    while True:
        batch = await client.get("/webhooks", per_page=100, page=page)
        if not isinstance(batch, list):
            raise WooError("GET /webhooks did not answer a list")
        found.extend(w for w in batch if isinstance(w, dict) and w.get("delivery_url") == url)
        if len(batch) < 100:
            return found
        page += 1


async def ensure_webhooks(
    client: WooClient, settings: Settings, shop_id: int, secret: str | None
) -> WebhookSync:
    """Every topic of ours exists and is active; with `secret`, each carries that secret."""
    url = delivery_url(settings, shop_id)
    existing = {str(w.get("topic")): w for w in await _ours(client, url)}
    created: list[str] = []
    reactivated: list[str] = []
    for topic in TOPICS:
        webhook = existing.get(topic)
        if webhook is None:
            body: dict[str, Any] = {
                "name": f"{WEBHOOK_NAME} ({topic})",
                "topic": topic,
                "delivery_url": url,
                "status": "active",
            }
            if secret is not None:
                body["secret"] = secret
            await client.post("/webhooks", body)
            created.append(topic)
        elif webhook.get("status") != "active" or secret is not None:
            update: dict[str, Any] = {"status": "active"}
            if secret is not None:
                update["secret"] = secret
            await client.put(f"/webhooks/{webhook['id']}", update)
            if webhook.get("status") != "active":
                reactivated.append(topic)
    return WebhookSync(tuple(created), tuple(reactivated))
