"""Server-side SVG charts: pure functions from numbers to markup, no JavaScript library.

The SVG has a fixed viewBox and the page reserves its aspect ratio, so a chart never moves
the layout when it appears (no layout shift).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 10, 24
COLOURS = ("#005bd3", "#c05717", "#29845a", "#8051ff")


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[int | Decimal]


def nice_ceiling(value: float) -> float:
    """The axis maximum: 1, 2, 2.5 or 5 times a power of ten, at least `value` (and > 0)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1) if value >= 1 else 1.0
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)


def _label(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1_000:
        return f"{value / 1_000:g}k"
    return f"{value:g}"


def line_chart(title: str, days: Sequence[date], series: Sequence[Series]) -> Markup:
    """A line per series over `days` (one value per day), with a labelled y axis."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = nice_ceiling(max((float(v) for s in series for v in s.values), default=0.0))
    count = max(len(days), 1)

    def x(index: int) -> float:
        return LEFT + (plot_w * index / (count - 1) if count > 1 else plot_w / 2)

    def y(value: float) -> float:
        return TOP + plot_h - plot_h * value / top

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for fraction in (0.0, 0.5, 1.0):
        level = top * fraction
        parts.append(
            f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(level):.1f}" '
            f'y2="{y(level):.1f}"/>'
            f'<text x="{LEFT - 6}" y="{y(level) + 4:.1f}" text-anchor="end">{_label(level)}</text>'
        )
    if days:
        for index in sorted({0, len(days) // 2, len(days) - 1}):
            parts.append(
                f'<text x="{x(index):.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
                f"{days[index].strftime('%b %d')}</text>"
            )
    for number, line in enumerate(series):
        colour = COLOURS[number % len(COLOURS)]
        points = " ".join(f"{x(i):.1f},{y(float(v)):.1f}" for i, v in enumerate(line.values))
        if points:
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}">'
                f"<title>{escape(line.name)}</title></polyline>"
            )
    parts.append("</svg>")
    legend = "".join(
        f'<span><i style="background:{COLOURS[n % len(COLOURS)]}"></i>{escape(s.name)}</span>'
        for n, s in enumerate(series)
    )
    return Markup("".join(parts) + f'<div class="legend">{legend}</div>')
