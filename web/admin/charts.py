"""Small server-rendered SVG charts for the dashboard: no JavaScript, nothing inline to allow in the CSP.

Labels are escaped here; the result is marked safe for the template.
"""

from __future__ import annotations

from html import escape

from markupsafe import Markup


def bars(items: list[tuple[str, int]], *, width: int = 420, bar: int = 22, css: str = "bar") -> Markup:
    """Horizontal bars with a label and the value."""
    peak = max([value for _, value in items] + [1])
    label_w, gap = 150, 6
    height = max(len(items), 1) * (bar + gap)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img">']
    for index, (label, value) in enumerate(items):
        y = index * (bar + gap)
        length = (width - label_w - 50) * value / peak
        parts.append(
            f'<text x="0" y="{y + bar * 0.7:.0f}" class="chart-label">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{length:.1f}" height="{bar}" class="{css}"/>'
            f'<text x="{label_w + length + 4:.1f}" y="{y + bar * 0.7:.0f}" class="chart-value">{value}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def columns(items: list[tuple[str, int]], *, width: int = 640, height: int = 160) -> Markup:
    """Vertical columns, e.g. calls per day; every label is shown under its column when there is room."""
    peak = max([value for _, value in items] + [1])
    n = max(len(items), 1)
    step = width / n
    every = max(1, int(n / 12))
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height + 20}" width="100%" role="img">']
    for index, (label, value) in enumerate(items):
        h = (height - 14) * value / peak
        x = index * step
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{height - h:.1f}" width="{max(step - 2, 1):.1f}" height="{h:.1f}" '
            f'class="bar"><title>{escape(label)}: {value}</title></rect>'
        )
        if value:
            parts.append(
                f'<text x="{x + step / 2:.1f}" y="{height - h - 2:.1f}" class="chart-value" '
                f'text-anchor="middle">{value}</text>'
            )
        if index % every == 0:
            parts.append(
                f'<text x="{x + step / 2:.1f}" y="{height + 14}" class="chart-label" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def heatmap(grid: list[list[int]], row_labels: list[str], *, cell: int = 22) -> Markup:
    """Weekday x hour: darker is more calls."""
    peak = max([max(row) for row in grid] + [1])
    left, top = 36, 16
    width, height = left + 24 * cell, top + len(grid) * cell
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img">']
    for hour in range(0, 24, 3):
        parts.append(
            f'<text x="{left + hour * cell + cell / 2}" y="12" class="chart-label" '
            f'text-anchor="middle">{hour:02d}</text>'
        )
    for r, row in enumerate(grid):
        parts.append(
            f'<text x="0" y="{top + r * cell + cell * 0.7:.0f}" class="chart-label">{escape(row_labels[r])}</text>'
        )
        for hour, value in enumerate(row):
            opacity = 0.06 + 0.94 * value / peak if value else 0.03
            parts.append(
                f'<rect x="{left + hour * cell}" y="{top + r * cell}" width="{cell - 2}" '
                f'height="{cell - 2}" class="heat" fill-opacity="{opacity:.2f}">'
                f"<title>{escape(row_labels[r])} {hour:02d}:00 — {value}</title></rect>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))
