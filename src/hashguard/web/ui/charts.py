"""Charts as inline SVG, drawn on the server: no script, no inline style (presentation
attributes only), so the strict CSP holds. Every mark carries its number in
``data-value`` and a ``<title>``, for screen readers and for tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 640
HEIGHT = 220
LEFT = 150
TOP = 10
BAR = "#4a6fa5"
WHISKER = "#333333"


def _num(value: float) -> str:
    return f"{value:.1f}"


def column_chart(
    labels: Sequence[str], values: Sequence[float], *, name: str, unit: str = ""
) -> Markup:
    """One column per label (periods along the x axis)."""
    peak = max([*values, 0]) or 1
    inner_h, bottom = HEIGHT - 50, HEIGHT - 30
    step = (WIDTH - 60) / max(len(values), 1)
    parts = [
        f'<svg class="chart" data-chart="{escape(name)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(name)}" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="40" y1="{bottom}" x2="{WIDTH - 10}" y2="{bottom}" stroke="#999"/>',
        f'<text x="36" y="{TOP + 10}" text-anchor="end" font-size="11">'
        f"{escape(_fmt(peak, unit))}</text>",
    ]
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        height = inner_h * value / peak
        x = 40 + index * step + step * 0.15
        parts.append(
            f'<rect class="mark" data-label="{escape(label)}" data-value="{value:g}" '
            f'x="{_num(x)}" y="{_num(bottom - height)}" width="{_num(step * 0.7)}" '
            f'height="{_num(height)}" fill="{BAR}"><title>{escape(label)}: '
            f"{escape(_fmt(value, unit))}</title></rect>"
            f'<text x="{_num(x + step * 0.35)}" y="{bottom + 14}" text-anchor="middle" '
            f'font-size="10">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every value above is escaped)


@dataclass(frozen=True, kw_only=True, slots=True)
class Interval:
    label: str
    value: float
    low: float
    high: float
    n: int


def interval_chart(rows: Sequence[Interval], *, name: str) -> Markup:
    """A dot and its 95% interval per row, on a 0-100% axis (accuracy of lists, bands)."""
    height = TOP + 24 * len(rows) + 30
    span = WIDTH - LEFT - 20

    def x(share: float) -> str:
        return _num(LEFT + span * share)

    parts = [
        f'<svg class="chart" data-chart="{escape(name)}" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" aria-label="{escape(name)}" xmlns="http://www.w3.org/2000/svg">',
    ]
    for tick in (0, 0.5, 0.9, 1):
        parts.append(
            f'<line x1="{x(tick)}" y1="{TOP}" x2="{x(tick)}" y2="{height - 24}" '
            f'stroke="#ddd"/><text x="{x(tick)}" y="{height - 10}" text-anchor="middle" '
            f'font-size="10">{tick:.0%}</text>'
        )
    for index, row in enumerate(rows):
        y = TOP + 12 + 24 * index
        parts.append(
            f'<g class="mark" data-label="{escape(row.label)}" data-value="{row.value:.4f}" '
            f'data-low="{row.low:.4f}" data-high="{row.high:.4f}">'
            f"<title>{escape(row.label)}: {row.value:.1%} ({row.low:.1%} to {row.high:.1%}, "
            f"n={row.n})</title>"
            f'<text x="{LEFT - 8}" y="{y + 4}" text-anchor="end" font-size="11">'
            f"{escape(row.label)}</text>"
            f'<line x1="{x(row.low)}" y1="{y}" x2="{x(row.high)}" y2="{y}" '
            f'stroke="{WHISKER}" stroke-width="2"/>'
            f'<circle cx="{x(row.value)}" cy="{y}" r="5" fill="{BAR}"/></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every value above is escaped)


def _fmt(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value:.1%}"
    return f"{value:g}{unit}"
