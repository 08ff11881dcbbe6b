"""Small inline-SVG charts for the HTML report: no plotting library, no images to ship.

Line charts over time (with shaded load phases) and horizontal bar charts are
all the report needs; a self-contained HTML file with inline SVG opens in any
browser, scales, and keeps its text selectable.
"""

from __future__ import annotations

import dataclasses
import math
from html import escape

PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


@dataclasses.dataclass
class Series:
    name: str
    points: list[tuple[float, float | None]]  # None: a gap
    color: str | None = None
    dashed: bool = False


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 0.5:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v / 1000:g}k"
    return f"{v:g}"


def line_chart(
    title: str,
    series: list[Series],
    *,
    y_label: str = "",
    x_label: str = "seconds since start",
    bands: list[tuple[float, float, str]] | None = None,
    width: int = 920,
    height: int = 250,
    y_max: float | None = None,
    x_range: tuple[float, float] | None = None,
    integer_y: bool = False,
) -> str:
    """An SVG line chart; ``bands`` shades (x0, x1, label) ranges such as load phases.
    The legend goes below the plot, wrapped, so that many series never hide the title."""
    left, right, top, bottom = 64, 16, 28, 40
    legend_rows = _legend_rows([s.name for s in series], width - left - right)
    pw, ph = width - left - right, height - top - bottom
    height += 18 * len(legend_rows)
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points if y is not None]
    if x_range is not None:
        x0, x1 = x_range
    else:
        x0 = min(xs + [b[0] for b in bands or []], default=0.0)
        x1 = max(xs + [b[1] for b in bands or []], default=1.0)
    y_hi = y_max if y_max is not None else max(ys, default=1.0)
    yt = nice_ticks(0.0, y_hi * 1.05 if y_hi > 0 else 1.0)
    if integer_y:
        yt = sorted({math.ceil(t) for t in yt}) if yt[-1] >= 4 else list(range(int(yt[-1]) + 2))
    y1 = yt[-1]
    xt = nice_ticks(x0, x1, 8)
    xt = [t for t in xt if x0 <= t <= x1]

    def sx(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1) * pw

    def sy(y: float) -> float:
        return top + ph - min(y, y1) / (y1 or 1) * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'class="chart" role="img" aria-label="{escape(title)}">'
        '<rect width="100%" height="100%" fill="#fff"/>',
        f'<text x="{left}" y="20" class="title">{escape(title)}</text>',
    ]
    for i, (b0, b1, label) in enumerate(bands or []):
        fill = "#f3f3f3" if i % 2 == 0 else "#e8eef7"
        out.append(
            f'<rect x="{sx(b0):.1f}" y="{top}" width="{max(sx(b1) - sx(b0), 0):.1f}" '
            f'height="{ph}" fill="{fill}"/>'
            f'<text x="{sx(b0) + 4:.1f}" y="{top + 12}" class="band">{escape(label)}</text>'
        )
    for t in yt:
        out.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" class="tick" text-anchor="end">'
            f"{_fmt(t)}</text>"
        )
    for t in xt:
        out.append(
            f'<text x="{sx(t):.1f}" y="{top + ph + 16}" class="tick" text-anchor="middle">'
            f"{_fmt(t)}</text>"
        )
    out.append(
        f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" class="axis"/>'
        f'<text x="{left + pw / 2}" y="{top + ph + 32}" class="label" text-anchor="middle">'
        f"{escape(x_label)}</text>"
        f'<text x="14" y="{top + ph / 2}" class="label" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + ph / 2})">{escape(y_label)}</text>'
    )
    colors = {s.name: s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)}
    for s in series:
        color = colors[s.name]
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        paths, current = [], []
        for x, y in s.points:
            if y is None:
                if current:
                    paths.append(current)
                current = []
            else:
                current.append(f"{sx(x):.1f},{sy(y):.1f}")
        if current:
            paths.append(current)
        for p in paths:
            if len(p) == 1:
                cx, cy = p[0].split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{color}"/>')
            else:
                out.append(
                    f'<polyline points="{" ".join(p)}" fill="none" stroke="{color}" '
                    f'stroke-width="1.8"{dash}><title>{escape(s.name)}</title></polyline>'
                )
    by_name = {s.name: s for s in series}
    for r, names in enumerate(legend_rows):
        y = top + ph + bottom + 4 + r * 18
        x = left
        for name in names:
            dash = ' stroke-dasharray="5 3"' if by_name[name].dashed else ""
            out.append(
                f'<line x1="{x}" x2="{x + 16}" y1="{y}" y2="{y}" stroke="{colors[name]}" '
                f'stroke-width="3"{dash}/>'
                f'<text x="{x + 20}" y="{y + 4}" class="legend">{escape(name)}</text>'
            )
            x += _legend_width(name)
    out.append("</svg>")
    return "".join(out)


def _legend_width(name: str) -> int:
    return 7 * len(name) + 36


def _legend_rows(names: list[str], width: int) -> list[list[str]]:
    rows: list[list[str]] = [[]]
    used = 0
    for name in names:
        w = _legend_width(name)
        if rows[-1] and used + w > width:
            rows.append([])
            used = 0
        rows[-1].append(name)
        used += w
    return rows if rows[0] else []


def bar_chart(
    title: str, items: list[tuple[str, float]], *, unit: str = "", width: int = 920
) -> str:
    """Horizontal bars, largest first, value printed at the end of each bar."""
    items = sorted(items, key=lambda kv: kv[1], reverse=True)
    row, left, top = 22, 110, 34
    height = top + row * max(len(items), 1) + 12
    vmax = max((v for _, v in items), default=1.0) or 1.0
    pw = width - left - 140
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" class="chart">'
        '<rect width="100%" height="100%" fill="#fff"/>',
        f'<text x="{left}" y="20" class="title">{escape(title)}</text>',
    ]
    for i, (label, value) in enumerate(items):
        y = top + i * row
        w = value / vmax * pw
        out.append(
            f'<text x="{left - 8}" y="{y + 14}" class="tick" text-anchor="end">'
            f"{escape(label)}</text>"
            f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" '
            f'fill="{PALETTE[i % len(PALETTE)]}"/>'
            f'<text x="{left + w + 6:.1f}" y="{y + 14}" class="tick">'
            f"{value:.3g} {escape(unit)}</text>"
        )
    out.append("</svg>")
    return "".join(out)
