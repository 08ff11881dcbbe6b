"""Small inline-SVG charts for the HTML reports: no plotting library, no images to ship.

Line charts over time (with shaded load phases) and horizontal bar charts are
all the reports need; a self-contained HTML file with inline SVG opens in any
browser, scales, and keeps its text selectable. This module only lays a chart
out (positions, ticks, colours, legend rows); the ``charts.html.j2`` macros
draw it.
"""

from __future__ import annotations

import dataclasses
import math

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
LEGEND_ROW = 18  # pixels per legend row below a line chart
BAR_ROW = 22  # pixels per bar


@dataclasses.dataclass
class Series:
    name: str
    points: list[tuple[float, float | None]]  # None: a gap
    color: str | None = None
    dashed: bool = False


@dataclasses.dataclass(frozen=True)
class Band:
    """A shaded x range (a load phase) with its label."""

    x: float
    width: float
    fill: str
    label: str


@dataclasses.dataclass(frozen=True)
class Tick:
    pos: float  # pixels along the axis
    label: str


@dataclasses.dataclass(frozen=True)
class Trace:
    """One unbroken run of a series: a polyline, or a dot when it has a single point."""

    name: str
    color: str
    dashed: bool
    points: tuple[tuple[float, float], ...]


@dataclasses.dataclass(frozen=True)
class LegendItem:
    x: float
    y: float
    name: str
    color: str
    dashed: bool


@dataclasses.dataclass(frozen=True)
class LineChart:
    title: str
    width: int
    height: int
    left: int
    top: int
    plot_width: int
    plot_height: int
    x_label: str
    y_label: str
    bands: tuple[Band, ...]
    y_ticks: tuple[Tick, ...]
    x_ticks: tuple[Tick, ...]
    traces: tuple[Trace, ...]
    legend: tuple[LegendItem, ...]
    kind: str = "line"


@dataclasses.dataclass(frozen=True)
class Bar:
    label: str
    y: float
    width: float
    color: str
    value: float


@dataclasses.dataclass(frozen=True)
class BarChart:
    title: str
    width: int
    height: int
    left: int
    bar_height: int
    unit: str
    bars: tuple[Bar, ...]
    kind: str = "bar"


Chart = LineChart | BarChart


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


def tick_label(v: float) -> str:
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
) -> LineChart:
    """A line chart; ``bands`` shades (x0, x1, label) ranges such as load phases.
    The legend goes below the plot, wrapped, so that many series never hide the title."""
    left, right, top, bottom = 64, 16, 28, 40
    legend_rows = _legend_rows([s.name for s in series], width - left - right)
    pw, ph = width - left - right, height - top - bottom
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
    xt = [t for t in nice_ticks(x0, x1, 8) if x0 <= t <= x1]

    def sx(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1) * pw

    def sy(y: float) -> float:
        return top + ph - min(y, y1) / (y1 or 1) * ph

    colors = {s.name: s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)}
    traces = [
        Trace(s.name, colors[s.name], s.dashed, tuple((sx(x), sy(y)) for x, y in run))
        for s in series
        for run in _unbroken(s.points)
    ]
    by_name = {s.name: s for s in series}
    legend = []
    for r, names in enumerate(legend_rows):
        y = top + ph + bottom + 4 + r * LEGEND_ROW
        x = left
        for name in names:
            legend.append(LegendItem(x, y, name, colors[name], by_name[name].dashed))
            x += _legend_width(name)
    return LineChart(
        title=title,
        width=width,
        height=height + LEGEND_ROW * len(legend_rows),
        left=left,
        top=top,
        plot_width=pw,
        plot_height=ph,
        x_label=x_label,
        y_label=y_label,
        bands=tuple(
            Band(sx(b0), max(sx(b1) - sx(b0), 0), "#f3f3f3" if i % 2 == 0 else "#e8eef7", label)
            for i, (b0, b1, label) in enumerate(bands or [])
        ),
        y_ticks=tuple(Tick(sy(t), tick_label(t)) for t in yt),
        x_ticks=tuple(Tick(sx(t), tick_label(t)) for t in xt),
        traces=tuple(traces),
        legend=tuple(legend),
    )


def _unbroken(points: list[tuple[float, float | None]]) -> list[list[tuple[float, float]]]:
    """The runs of a series between its gaps (None values)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if y is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((x, y))
    return [r for r in runs if r]


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
) -> BarChart:
    """Horizontal bars, largest first, value printed at the end of each bar."""
    items = sorted(items, key=lambda kv: kv[1], reverse=True)
    left, top = 110, 34
    vmax = max((v for _, v in items), default=1.0) or 1.0
    pw = width - left - 140
    return BarChart(
        title=title,
        width=width,
        height=top + BAR_ROW * max(len(items), 1) + 12,
        left=left,
        bar_height=BAR_ROW - 6,
        unit=unit,
        bars=tuple(
            Bar(label, top + i * BAR_ROW, value / vmax * pw, PALETTE[i % len(PALETTE)], value)
            for i, (label, value) in enumerate(items)
        ),
    )
