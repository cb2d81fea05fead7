"""Topic handlers by source, for replaying dead letters whatever platform sent them."""

from __future__ import annotations

from collections.abc import Mapping

from webhooks.pipeline import Handler


def handlers_for(source: str) -> Mapping[str, Handler]:
    if source == "shopify":
        from webhooks.shopify.handlers import HANDLERS

        return HANDLERS
    if source == "judgeme":
        from webhooks.judgeme.handlers import HANDLERS as JUDGEME_HANDLERS

        return JUDGEME_HANDLERS
    if source == "woocommerce":
        from webhooks.woocommerce.handlers import HANDLERS as WOOCOMMERCE_HANDLERS

        return WOOCOMMERCE_HANDLERS
    if source == "segment":
        from webhooks.segment.handlers import HANDLERS as SEGMENT_HANDLERS

        return SEGMENT_HANDLERS
    return {}
