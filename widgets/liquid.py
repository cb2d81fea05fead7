"""Jinja2 for pages Shopify renders as Liquid (`Content-Type: application/liquid`).

Anything a shopper or merchant typed is HTML-escaped AND has its braces and percent
signs turned into entities, so `{{ shop.name }}` or `{% raw %}` in a name reaches the
browser as text instead of being run by Liquid inside the merchant's theme.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

LIQUID_ENTITIES = {"{": "&#123;", "}": "&#125;", "%": "&#37;"}


def liquid_safe(value: Any) -> Markup:
    """HTML-escape, then neutralise Liquid's delimiters."""
    if isinstance(value, Markup):
        return value
    text = str(escape("" if value is None else value))
    for char, entity in LIQUID_ENTITIES.items():
        text = text.replace(char, entity)
    return Markup(text)


def liquid_environment(directory: Path) -> Environment:
    return Environment(
        loader=FileSystemLoader(directory),
        autoescape=select_autoescape(default=True, default_for_string=True),
        finalize=liquid_safe,
    )
