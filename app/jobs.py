"""Every module that defines Huey tasks, imported together before a consumer starts."""

from __future__ import annotations

import importlib

TASK_MODULES: tuple[str, ...] = (
    "app.maintenance.tasks",
    "app.ledger.tasks",
    "app.imports.tasks",
    "app.rewards.tasks",
    "app.integrations.klaviyo.tasks",
    "app.integrations.judgeme.tasks",
    "app.winback.tasks",
    "app.integrations.woocommerce.tasks",
    "app.integrations.outgoing.tasks",
    "app.integrations.mailchimp.tasks",
    "app.integrations.segment.tasks",
)


def load_tasks() -> None:
    for module in TASK_MODULES:
        importlib.import_module(module)
