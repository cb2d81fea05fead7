"""shopify.app.toml declares exactly what Stamp serves and handles."""

from __future__ import annotations

import tomllib
from pathlib import Path

from app.main import create_app
from app.settings import Settings
from webhooks.shopify.handlers import COMPLIANCE_TOPICS, HANDLERS

CONFIG = tomllib.loads((Path(__file__).resolve().parents[1] / "shopify.app.toml").read_text())


def _paths() -> set[str]:
    return {getattr(route, "path", "") for route in create_app(Settings()).routes}


def test_every_subscribed_topic_has_a_handler_and_every_handler_is_subscribed() -> None:
    subscriptions = CONFIG["webhooks"]["subscriptions"]
    topics = {t for s in subscriptions for t in s.get("topics", [])}
    compliance = {t for s in subscriptions for t in s.get("compliance_topics", [])}

    assert compliance == COMPLIANCE_TOPICS
    assert topics | compliance == set(HANDLERS)


def test_declared_paths_are_served() -> None:
    paths = _paths()
    for subscription in CONFIG["webhooks"]["subscriptions"]:
        assert subscription["uri"] in paths
    for url in CONFIG["auth"]["redirect_urls"]:
        assert "/" + url.split("/", 3)[3] in paths
    assert "/" + CONFIG["application_url"].split("/", 3)[3] in paths


def test_app_config_is_what_the_cli_requires() -> None:
    assert CONFIG["embedded"] is True
    assert CONFIG["client_id"]
    assert CONFIG["webhooks"]["api_version"] == Settings().SHOPIFY_API_VERSION
    assert (CONFIG["app_proxy"]["prefix"], CONFIG["app_proxy"]["subpath"]) == ("apps", "stamp")
    assert "write_discounts" in CONFIG["access_scopes"]["scopes"]
