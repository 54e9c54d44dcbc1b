"""Charts as inline SVG, drawn on the server: no script, no stylesheet, nothing loaded from elsewhere.

Each function returns one ``<svg>`` element sized in pixels, with a ``<title>`` for screen readers
and on every bar, so hovering shows the exact number. Every text is HTML-escaped here.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

FONT = 'font-family="sans-serif" font-size="11"'
MUTED = "#666"


def _svg(width: int, height: int, label: str, body: str) -> str:
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}"><title>{escape(label)}</title>{body}</svg>'
    )


def _share(part: float, whole: float) -> str:
    return f"{part / whole:.0%}" if whole else "-"


def funnel(label: str, stages: Sequence[tuple[str, int]], color: str, width: int = 340) -> str:
    """Horizontal bars, one per stage, each as long as its count (the first stage is the widest);
    the count and its share of the first stage stand beside each bar."""
    bar_height, gap, left, right = 18, 6, 92, 96
    room = width - left - right
    top = max((value for _, value in stages), default=0)
    parts = []
    for index, (name, value) in enumerate(stages):
        y = index * (bar_height + gap)
        length = room * value / top if top else 0
        share = _share(value, stages[0][1]) if index else ""
        parts.append(
            f'<text x="{left - 6}" y="{y + 13}" text-anchor="end" {FONT}>{escape(name)}</text>'
            f'<rect x="{left}" y="{y}" width="{length:.1f}" height="{bar_height}" fill="{color}" '
            f'opacity="{1 - 0.22 * index:.2f}"><title>{escape(name)}: {value:,}</title></rect>'
            f'<text x="{left + length + 5:.1f}" y="{y + 13}" {FONT}>{value:,}'
            f"{f' ({share})' if share else ''}</text>"
        )
    height = max(1, len(stages)) * (bar_height + gap)
    return _svg(width, height, label, "".join(parts))


def stacked_bar(label: str, parts: Sequence[tuple[str, int, str]], width: int = 340) -> str:
    """One bar split by share (``(name, count, colour)``), with a legend of the non-zero parts."""
    total = sum(count for _, count, _ in parts)
    shown = [(name, count, color) for name, count, color in parts if count]
    body, x = [], 0.0
    for name, count, color in shown:
        length = width * count / total
        body.append(
            f'<rect x="{x:.2f}" y="0" width="{length:.2f}" height="16" fill="{color}">'
            f"<title>{escape(name)}: {count:,} ({_share(count, total)})</title></rect>"
        )
        x += length
    if not shown:
        body.append(f'<rect x="0" y="0" width="{width}" height="16" fill="#eee"/>')
        body.append(f'<text x="6" y="12" {FONT} fill="{MUTED}">no messages</text>')
    columns = 3
    for index, (name, count, color) in enumerate(shown):
        x, y = (index % columns) * (width // columns), 24 + (index // columns) * 16
        body.append(
            f'<rect x="{x}" y="{y}" width="10" height="10" fill="{color}"/>'
            f'<text x="{x + 14}" y="{y + 9}" {FONT}>{escape(name)} {count:,}</text>'
        )
    rows = -(-len(shown) // columns)
    return _svg(width, 24 + rows * 16, label, "".join(body))


def columns(
    label: str, values: Sequence[int], names: Sequence[str], color: str, width: int = 340, height: int = 90
) -> str:
    """Vertical bars (e.g. messages per minute), ``names[i]`` naming bar ``i``; the largest value
    labels the top, the first and last names the axis."""
    bottom, top_pad = height - 16, 12
    room = bottom - top_pad
    peak = max(values, default=0)
    step = width / max(1, len(values))
    body = [f'<line x1="0" y1="{bottom}" x2="{width}" y2="{bottom}" stroke="#ccc"/>']
    for index, (value, name) in enumerate(zip(values, names, strict=True)):
        bar = room * value / peak if peak else 0
        body.append(
            f'<rect x="{index * step + 1:.1f}" y="{bottom - bar:.1f}" width="{max(step - 2, 1):.1f}" '
            f'height="{bar:.1f}" fill="{color}"><title>{escape(name)}: {value:,}</title></rect>'
        )
    body.append(f'<text x="0" y="9" {FONT} fill="{MUTED}">max {peak:,}</text>')
    if names:
        body.append(f'<text x="0" y="{height - 3}" {FONT} fill="{MUTED}">{escape(names[0])}</text>')
        body.append(
            f'<text x="{width}" y="{height - 3}" text-anchor="end" {FONT} fill="{MUTED}">'
            f"{escape(names[-1])}</text>"
        )
    return _svg(width, height, label, "".join(body))


def rate_line(
    label: str,
    rates: Sequence[float | None],
    names: Sequence[str],
    color: str,
    width: int = 340,
    height: int = 90,
) -> str:
    """A line of shares from 0 to 1 (e.g. delivery rate per minute); None leaves a gap, a lone
    point is a dot. Grid lines at 0, 50 and 100 %."""
    bottom, top = height - 16, 6
    room = bottom - top
    body = []
    for share in (0.0, 0.5, 1.0):
        y = bottom - room * share
        body.append(f'<line x1="28" y1="{y:.1f}" x2="{width}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        body.append(f'<text x="0" y="{y + 4:.1f}" {FONT} fill="{MUTED}">{share:.0%}</text>')
    runs: list[list[tuple[float, float]]] = [[]]
    for index, (rate, name) in enumerate(zip(rates, names, strict=True)):
        if rate is None:
            runs.append([])
            continue
        x, y = 28 + (width - 28) * (index + 0.5) / len(rates), bottom - room * rate
        runs[-1].append((x, y))
        body.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"><title>{escape(name)}: '
            f"{rate:.1%}</title></circle>"
        )
    for run in runs:
        if len(run) > 1:
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
            body.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.5"/>')
    if not any(rate is not None for rate in rates):
        body.append(
            f'<text x="34" y="{bottom - room / 2 - 4:.1f}" {FONT} fill="{MUTED}">no finished message</text>'
        )
    if names:
        body.append(f'<text x="28" y="{height - 3}" {FONT} fill="{MUTED}">{escape(names[0])}</text>')
        body.append(
            f'<text x="{width}" y="{height - 3}" text-anchor="end" {FONT} fill="{MUTED}">'
            f"{escape(names[-1])}</text>"
        )
    return _svg(width, height, label, "".join(body))
