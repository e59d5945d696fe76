"""Small server-rendered SVG charts for the dashboard: no JavaScript, nothing inline to allow in the CSP.

Labels are escaped here; the result is marked safe for the template.

Each chart is drawn at the size it is shown at on a 1280-1440 px laptop (its ``width`` attribute; CSS
only shrinks it on a narrower screen), so a 12 px label is 12 px on the screen rather than scaled
with the card. The server cannot measure text, so widths are estimated from the character count
with a generous per-character width (Cyrillic in the usual sans fonts is wider than Latin), and a
label too long for its room is cut with "…" -- the whole text stays in the element's tooltip.
"""

from __future__ import annotations

import math
from html import escape

from markupsafe import Markup

#: the labels' font size in px (admin.css .chart-label / .chart-value) and a safe estimate of a character's width
FONT = 12
CHAR = 7.8
#: a half-width card's inner width at 1280 px (two cards a row); the weekday x hour chart spans the row
HALF = 580


def text_width(text: str) -> float:
    return len(text) * CHAR


def fit(text: str, room: float) -> str:
    """``text`` cut with "…" to fit ``room`` px."""
    if text_width(text) <= room:
        return text
    return text[: max(int(room / CHAR) - 1, 1)].rstrip() + "…"


def _svg(width: float, height: float) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
        'role="img">'
    )


def bars(items: list[tuple[str, int]], *, width: int = HALF, bar: int = 20, css: str = "bar") -> Markup:
    """Horizontal bars: the label, then the bar, then the value; a label never reaches its bar."""
    peak = max([value for _, value in items] + [1])
    gap, label_gap = 8, 10
    label_room = min(max([text_width(label) for label, _ in items] + [40]), width * 0.45)
    value_room = text_width(str(peak)) + 8
    start = label_room + label_gap
    height = max(len(items), 1) * (bar + gap)
    parts = [_svg(width, height)]
    for index, (label, value) in enumerate(items):
        y = index * (bar + gap)
        length = max((width - start - value_room) * value / peak, 1)
        baseline = y + bar / 2 + FONT * 0.35
        parts.append(
            f"<g><title>{escape(label)}: {value}</title>"
            f'<text x="0" y="{baseline:.1f}" class="chart-label">{escape(fit(label, label_room))}</text>'
            f'<rect x="{start:.1f}" y="{y}" width="{length:.1f}" height="{bar}" class="{css}"/>'
            f'<text x="{start + length + 4:.1f}" y="{baseline:.1f}" class="chart-value">{value}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def columns(items: list[tuple[str, int]], *, width: int = HALF, height: int = 170) -> Markup:
    """Vertical columns, e.g. calls per day. Day labels go under every k-th column so that none touch,
    the first and the last held inside the chart; a value shows above its column when it fits the column."""
    peak = max([value for _, value in items] + [1])
    n = max(len(items), 1)
    pad, top, below = 2, 16, 22
    step = (width - 2 * pad) / n
    widest = max([text_width(label) for label, _ in items] + [1])
    every = max(1, math.ceil((widest + 10) / step))
    base = height - below
    parts = [_svg(width, height)]
    for index, (label, value) in enumerate(items):
        h = (base - top) * value / peak
        x = pad + index * step
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{base - h:.1f}" width="{max(step - 2, 1):.1f}" height="{h:.1f}" '
            f'class="bar"><title>{escape(label)}: {value}</title></rect>'
        )
        if value and text_width(str(value)) + 2 <= step:
            parts.append(
                f'<text x="{x + step / 2:.1f}" y="{base - h - 3:.1f}" class="chart-value" '
                f'text-anchor="middle">{value}</text>'
            )
        if index % every == 0:
            half = text_width(label) / 2
            centre = min(max(x + step / 2, half + 1), width - half - 1)
            parts.append(
                f'<text x="{centre:.1f}" y="{height - 6}" class="chart-label" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def heatmap(grid: list[list[int]], row_labels: list[str], *, cell_w: int = 46, cell_h: int = 26) -> Markup:
    """Weekday x hour: darker is more calls; every hour labelled at the top."""
    peak = max([max(row) for row in grid] + [1])
    left = max([text_width(label) for label in row_labels] + [20]) + 12
    top = 20
    width = left + 24 * cell_w
    height = top + len(grid) * cell_h
    parts = [_svg(width, height)]
    for hour in range(24):
        parts.append(
            f'<text x="{left + hour * cell_w + (cell_w - 2) / 2:.1f}" y="{top - 6}" class="chart-label" '
            f'text-anchor="middle">{hour:02d}</text>'
        )
    for r, row in enumerate(grid):
        parts.append(
            f'<text x="0" y="{top + r * cell_h + (cell_h - 2) / 2 + FONT * 0.35:.1f}" class="chart-label">'
            f"{escape(row_labels[r])}</text>"
        )
        for hour, value in enumerate(row):
            opacity = 0.06 + 0.94 * value / peak if value else 0.03
            parts.append(
                f'<rect x="{left + hour * cell_w:.1f}" y="{top + r * cell_h}" width="{cell_w - 2}" '
                f'height="{cell_h - 2}" class="heat" fill-opacity="{opacity:.2f}">'
                f"<title>{escape(row_labels[r])} {hour:02d}:00 — {value}</title></rect>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))
