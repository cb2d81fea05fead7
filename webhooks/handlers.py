"""Topic handlers by source, for replaying dead letters whatever platform sent them."""

from __future__ import annotations

from collections.abc import Mapping

from webhooks.pipeline import Handler


def handlers_for(source: str) -> Mapping[str, Handler]:
    if source == "shopify":
        from webhooks.shopify.handlers import HANDLERS

        return HANDLERS
    return {}
