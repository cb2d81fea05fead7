"""Copy the storefront widget's files into the Shopify theme app extension.

Shopify serves a theme app extension's `assets/` from its CDN, so the extension ships its
own copies of `widgets/static/`. They must stay byte-identical (tests/widgets/test_assets.py
fails otherwise). Run after editing the widget:

    python -m widgets.sync_extension_assets          # copy
    python -m widgets.sync_extension_assets --check  # exit 1 if a copy differs
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "widgets" / "static"
EXTENSION_ASSETS = ROOT / "extensions" / "shopify" / "assets"
ASSETS = ("stamp-loader.js", "stamp-panel.js", "stamp.css")


def differences() -> list[str]:
    """The asset names whose extension copy is missing or differs from widgets/static."""
    return [
        name
        for name in ASSETS
        if not (EXTENSION_ASSETS / name).is_file()
        or (EXTENSION_ASSETS / name).read_bytes() != (STATIC / name).read_bytes()
    ]


def sync() -> list[str]:
    """Copy every differing asset; returns the names copied."""
    changed = differences()
    EXTENSION_ASSETS.mkdir(parents=True, exist_ok=True)
    for name in changed:
        shutil.copyfile(STATIC / name, EXTENSION_ASSETS / name)
    return changed


def main(argv: list[str]) -> int:
    if "--check" in argv:
        stale = differences()
        if stale:
            sys.stderr.write(f"out of date in {EXTENSION_ASSETS}: {', '.join(stale)}\n")
            return 1
        return 0
    for name in sync():
        sys.stdout.write(f"copied {name}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
