"""Charts as inline SVG, drawn on the server: no JavaScript, no library, nothing fetched from the
internet. Every mark carries a ``<title>`` with its exact value (the browser shows it on hover) and
every chart a ``<title>`` that says what it shows, so the numbers are in the page as text too."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

# Colours that stay apart for the common kinds of colour blindness (Okabe-Ito), in series order.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
OUTCOME_COLOURS = {
    "delivered": "#009E73",
    "undelivered": "#E69F00",
    "failed": "#D55E00",
    "pending": "#56B4E9",
    "rejected": "#CC79A7",
    "suppressed": "#999999",
    "unsent": "#F0E442",
}
FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" font-size="12"'


@dataclass(frozen=True)
class Stage:
    """One bar of a funnel: its label, its count and, under it, what was lost on the way to it."""

    label: str
    value: int
    losses: Sequence[tuple[str, int]] = ()


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    colour: str = ""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _pct(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "-"


def funnel(stages: Sequence[Stage], *, title: str, width: int = 640) -> Markup:
    """Horizontal bars, each as long as its share of the first stage, with the losses between them."""
    top = max(stages[0].value, 1) if stages else 1
    label_w, bar_x, row_h = 150, 160, 46
    bar_w = width - bar_x - 10
    height = len(stages) * row_h + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart funnel" role="img" viewBox="0 0 {width} {height}" '
        f'width="100%" {FONT}><title>{_e(title)}</title>'
    ]
    for i, stage in enumerate(stages):
        y = 8 + i * row_h
        w = max(bar_w * stage.value / top, 1 if stage.value else 0)
        share = _pct(stage.value, stages[0].value)
        parts.append(
            f'<text x="{label_w}" y="{y + 15}" text-anchor="end" font-weight="600">{_e(stage.label)}</text>'
            f'<rect x="{bar_x}" y="{y}" width="{w:.1f}" height="22" rx="3" fill="{PALETTE[i % len(PALETTE)]}">'
            f"<title>{_e(stage.label)}: {stage.value:,} ({share} of {_e(stages[0].label.lower())})</title></rect>"
            f'<text x="{bar_x + w + 6 if w < bar_w - 120 else bar_x + 6}" y="{y + 15}" '
            f'fill="{"#222" if w < bar_w - 120 else "#fff"}" data-value="{stage.value}">'
            f"{stage.value:,} ({share})</text>"
        )
        losses = [f"{name} {count:,}" for name, count in stage.losses if count]
        if losses:
            parts.append(
                f'<text x="{bar_x}" y="{y + 37}" fill="#666">not further: {_e(", ".join(losses))}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def _legend(entries: Sequence[tuple[str, str]], *, x: float, y: float, gap: int) -> str:
    """Swatches with their labels in a row: (label, colour) each."""
    out = []
    for label, colour in entries:
        out.append(
            f'<rect x="{x}" y="{y}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="{y + 9}">{_e(label)}</text>'
        )
        x += gap + 7 * len(label)
    return "".join(out)


def _series_legend(series: Sequence[Series], *, x: float, y: float) -> str:
    colours = [s.colour or PALETTE[k % len(PALETTE)] for k, s in enumerate(series)]
    return _legend([(s.name, c) for s, c in zip(series, colours, strict=True)], x=x, y=y, gap=30)


def _y_grid(high: float, py: Callable[[float], float], *, x1: float, x2: float, y_format: str) -> str:
    """Five horizontal grid lines from 0 to ``high``, labelled on the left."""
    out = []
    for step in range(5):
        v = high * step / 4
        y = py(v)
        out.append(
            f'<line x1="{x1}" x2="{x2}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e3e3"/>'
            f'<text x="{x1 - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{_e(y_format.format(v))}</text>'
        )
    return "".join(out)


def stacked_bar(parts_: Sequence[tuple[str, int]], *, title: str, width: int = 640) -> Markup:
    """One bar split into outcomes (their share of the total), with a legend."""
    total = sum(n for _, n in parts_)
    height = 62
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart outcomes" role="img" viewBox="0 0 {width} {height}" '
        f'width="100%" {FONT}><title>{_e(title)}</title>'
    ]
    x = 0.0
    for name, count in parts_:
        if not count:
            continue
        w = (width - 2) * count / total
        colour = OUTCOME_COLOURS.get(name, "#888")
        out.append(
            f'<rect x="{x + 1:.1f}" y="2" width="{w:.1f}" height="22" fill="{colour}">'
            f"<title>{_e(name)}: {count:,} ({_pct(count, total)})</title></rect>"
        )
        x += w
    shown = [(f"{name} {count:,}", OUTCOME_COLOURS.get(name, "#888")) for name, count in parts_ if count]
    out.append(_legend(shown, x=1, y=36, gap=24))
    out.append("</svg>")
    return Markup("".join(out))


def line_chart(
    x_labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    y_max: float | None = None,
    y_format: str = "{:,.0f}",
    width: int = 640,
    height: int = 240,
) -> Markup:
    """Lines over labelled x positions (one point per label); a None value leaves a gap."""
    left, right, top, bottom = 56, 40, 12, 52
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for s in series for v in s.values if v is not None]
    high = y_max if y_max is not None else max([*values, 1])
    n = len(x_labels)

    def px(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def py(v: float) -> float:
        return top + plot_h - plot_h * (v / high if high else 0)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart line" role="img" viewBox="0 0 {width} {height}" '
        f'width="100%" {FONT}><title>{_e(title)}</title>'
    ]
    out.append(_y_grid(high, py, x1=left, x2=width - right, y_format=y_format))
    every = max(1, -(-n // 8))  # at most about 8 x labels
    for i, label in enumerate(x_labels):
        if i % every == 0 or i == n - 1:
            out.append(
                f'<text x="{px(i):.1f}" y="{top + plot_h + 16}" text-anchor="middle" fill="#555">{_e(label)}</text>'
            )
    for k, s in enumerate(series):
        colour = s.colour or PALETTE[k % len(PALETTE)]
        runs: list[list[str]] = [[]]
        for i, v in enumerate(s.values):
            if v is None:
                runs.append([])
                continue
            runs[-1].append(f"{px(i):.1f},{py(v):.1f}")
        for run in runs:
            if len(run) > 1:
                out.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" stroke-width="2"/>'
                )
        for i, v in enumerate(s.values):
            if v is not None:
                out.append(
                    f'<circle cx="{px(i):.1f}" cy="{py(v):.1f}" r="3" fill="{colour}">'
                    f"<title>{_e(s.name)}, {_e(x_labels[i])}: {_e(y_format.format(v))}</title></circle>"
                )
    out.append(_series_legend(series, x=left, y=height - 16))
    out.append("</svg>")
    return Markup("".join(out))


def grouped_bars(
    x_labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    y_max: float,
    y_format: str = "{:.1f}%",
    width: int = 640,
    height: int = 240,
) -> Markup:
    """Per x label one bar per series (a None value draws no bar), labelled with its value."""
    left, right, top, bottom = 56, 12, 16, 52
    plot_w, plot_h = width - left - right, height - top - bottom
    n, k = max(len(x_labels), 1), max(len(series), 1)
    slot = plot_w / n
    bar = min(slot * 0.8 / k, 48)

    def py(v: float) -> float:
        return top + plot_h - plot_h * (v / y_max if y_max else 0)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart bars" role="img" viewBox="0 0 {width} {height}" '
        f'width="100%" {FONT}><title>{_e(title)}</title>'
    ]
    out.append(_y_grid(y_max, py, x1=left, x2=width - right, y_format=y_format))
    every = max(1, -(-n // 10))
    for i, label in enumerate(x_labels):
        cx = left + slot * (i + 0.5)
        if i % every == 0:
            out.append(
                f'<text x="{cx:.1f}" y="{top + plot_h + 16}" text-anchor="middle" fill="#555">{_e(label)}</text>'
            )
        for j, s in enumerate(series):
            v = s.values[i]
            if v is None:
                continue
            colour = s.colour or PALETTE[j % len(PALETTE)]
            x = cx - bar * k / 2 + j * bar
            y = py(v)
            out.append(
                f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(bar - 2, 1):.1f}" height="{top + plot_h - y:.1f}" '
                f'fill="{colour}"><title>{_e(s.name)}, {_e(label)}: {_e(y_format.format(v))}</title></rect>'
            )
            if bar >= 28:
                out.append(
                    f'<text x="{x + bar / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle" font-size="11">'
                    f"{_e(y_format.format(v))}</text>"
                )
    out.append(_series_legend(series, x=left, y=height - 16))
    out.append("</svg>")
    return Markup("".join(out))
