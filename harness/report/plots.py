"""Report plots as PNG bytes (matplotlib, Agg canvas; no display and no pyplot global state).

Per model: latency vs batch size per precision with the p50-p99 band, throughput vs batch size, throughput vs p99
latency, speed-up by precision vs fp32, baseline vs current per case with spread. Per regressed (or ambiguous) case:
the latency distribution (empirical CDF) against the baseline's. Colours come from the Okabe-Ito palette, which
stays distinguishable with the common colour-vision deficiencies; every series also has its own marker. A value
that is not a finite number (NaN, infinity: a hand-edited results file, a broken measurement) is never drawn; the
image and its caption say which cases lost points.
"""

from __future__ import annotations

import io
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.view.attribution import CaseAttribution, GroupRow, report_attributions, signed_ms
from harness.view.cases import CaseView
from harness.view.cells import slug
from harness.view.report_view import ReportView
from harness.view.series import PRECISION_ORDER, baseline_spread, finite, latency, not_finite_ids, precision_series
from harness.view.trends import Trend

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
FIGSIZE = (6.4, 3.9)  # inches; 640 x 390 px at DPI, legible at 100 % zoom
DPI = 100
MAX_DISTRIBUTIONS = 16  # latency-distribution plots per report; the rest are listed, not drawn (keeps it fast)
MAX_ATTRIBUTIONS = 16  # where-the-time-went plots per report, regressed cases first; the rest show their tables


@dataclass
class Plot:
    """One PNG: ``file`` is its name under plots/ (a safe slug, never raw user text)."""

    file: str
    title: str  # user text inside; escaped where shown
    model: str | None
    kind: str
    png: bytes
    case_id: str | None = None


def _style(index: int, name: str) -> dict[str, Any]:
    """Colour and marker of a series; the usual precisions keep theirs, so fp16 is the same colour on every plot."""
    if name in PRECISION_ORDER:
        index = PRECISION_ORDER.index(name)
    return {"color": OKABE_ITO[index % len(OKABE_ITO)], "marker": MARKERS[index % len(MARKERS)]}


def _compact(value: float, _position: Any = None) -> str:
    """Tick text of at most ~5 characters (17.5k, 1500, 0.25), so the fixed left margin always fits it."""
    if abs(value) >= 1e4:
        return f"{value / 1e3:.4g}k"
    return f"{value:.4g}"


def _figure(height: float = FIGSIZE[1], left_px: float = 72, bottom_px: float = 48) -> tuple[Any, Any]:
    """A figure with fixed margins in pixels: a layout engine would cost more than the drawing (reports must stay
    fast at hundreds of plots), and the labels here have known sizes."""
    # matplotlib is imported where a figure is drawn: importing harness.report (the terminal table at the end of a
    # pytest session, harness merge) must not load it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(FIGSIZE[0], height), dpi=DPI)
    FigureCanvasAgg(fig)
    width_px, height_px = FIGSIZE[0] * DPI, height * DPI
    fig.subplots_adjust(
        left=left_px / width_px, right=1 - 12 / width_px, bottom=bottom_px / height_px, top=1 - 28 / height_px
    )
    ax = fig.add_subplot()
    from matplotlib.ticker import FuncFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(_compact))
    ax.grid(True, color="#dddddd", linewidth=0.7)
    ax.set_axisbelow(True)
    return fig, ax


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    # No "Software" text chunk: the page must not carry any address, even inside an image.
    # Fast zlib level: plots are flat colours, so level 1 is nearly as small and several times quicker.
    fig.savefig(buffer, format="png", metadata={"Software": None}, pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


def _short(text: str, limit: int = 60) -> str:
    """User text for a plot: shortened, and with ``$`` escaped so matplotlib never parses it as mathtext."""
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def _batch_axis(ax: Any, batches: list[int]) -> None:
    ax.set_xlabel("batch size (samples)")
    values = sorted(set(batches))
    if values and values[0] > 0 and values[-1] / values[0] >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xticks(values)
    ax.set_xticklabels([str(v) for v in values])
    ax.minorticks_off()


def _note_not_drawn(fig: Any, ids: list[str]) -> str:
    """Say in the image (bottom right) and return for the caption that some cases' points are not drawn."""
    if not ids:
        return ""
    shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
    text = f"NaN/inf not drawn: {shown}"
    fig.text(0.99, 0.005, _short(text, 90), ha="right", va="bottom", fontsize=7, color="#D55E00")
    return text


def _top(lines: Any, axis: int) -> float:
    """The largest x (axis 0) or y (axis 1) value drawn, so limits leave room above it; 1.0 when nothing is."""
    values = [float(v) for line in lines for v in line.get_data()[axis] if finite(v) is not None]
    return max(values) if values and max(values) > 0 else 1.0


def latency_vs_batch(model: str, cases: list[CaseView]) -> Any | None:
    series = precision_series(cases)
    if not series:
        return None
    fig, ax = _figure()
    batches = []
    for index, (name, group) in enumerate(series.items()):
        points = [(c.batch_size, latency(c, "median"), latency(c, "p99")) for c in group]
        points = [p for p in points if p[1] is not None]
        if not points:
            continue
        style = _style(index, name.split()[0])
        xs = [int(p[0] or 0) for p in points]
        batches += xs
        ax.plot(xs, [p[1] for p in points], label=name, linewidth=1.8, **style)
        p99 = [p[2] if p[2] is not None else p[1] for p in points]
        ax.fill_between(xs, [p[1] for p in points], p99, color=style["color"], alpha=0.18, linewidth=0)
        # the band of each batch size as a bar too, so a single batch size still shows its p50-p99 spread
        ax.vlines(xs, [p[1] for p in points], p99, colors=style["color"], linewidth=4, alpha=0.3)
        ax.plot(xs, p99, linestyle="--", linewidth=1, marker="_", markersize=12, color=style["color"])
    if not batches:
        return None
    _batch_axis(ax, batches)
    ax.set_ylabel("latency per batch (ms)")
    ax.set_ylim(0, _top(ax.get_lines(), 1) * 1.08)
    ax.set_title(f"{_short(model)}: latency vs batch size (band: p50–p99)", fontsize=10)
    ax.legend(fontsize=8, title="solid: p50 · dashed: p99", title_fontsize=8, ncols=2 if len(series) > 4 else 1)
    return fig


def throughput_vs_batch(model: str, cases: list[CaseView]) -> Any | None:
    series = precision_series(cases)
    fig, ax = _figure()
    batches: list[int] = []
    for index, (name, group) in enumerate(series.items()):
        points = [(int(c.batch_size or 0), finite(c.metric("throughput_sps"))) for c in group]
        points = [p for p in points if p[1] is not None]
        if points:
            batches += [p[0] for p in points]
            ax.plot(*zip(*points, strict=True), label=name, linewidth=1.8, **_style(index, name.split()[0]))
    if not batches:
        return None
    _batch_axis(ax, batches)
    ax.set_ylabel("throughput (samples/s)")
    ax.set_ylim(0, _top(ax.get_lines(), 1) * 1.12)
    ax.set_title(f"{_short(model)}: throughput vs batch size", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def throughput_vs_latency(model: str, cases: list[CaseView]) -> Any | None:
    series = precision_series(cases)
    fig, ax = _figure()
    drawn = False
    for index, (name, group) in enumerate(series.items()):
        points = [(latency(c, "p99"), finite(c.metric("throughput_sps")), c.batch_size) for c in group]
        points = [p for p in points if p[0] is not None and p[1] is not None]
        if not points:
            continue
        drawn = True
        style = _style(index, name.split()[0])
        ax.plot([p[0] for p in points], [p[1] for p in points], label=name, linewidth=1.2, **style)
        for x, y, batch in points:
            ax.annotate(f"b{batch}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if not drawn:
        return None
    ax.xaxis.set_major_formatter(ax.yaxis.get_major_formatter())
    ax.set_xlabel("p99 latency per batch (ms)")
    ax.set_ylabel("throughput (samples/s)")
    ax.set_xlim(0, _top(ax.get_lines(), 0) * 1.12)  # room for the batch labels
    ax.set_ylim(0, _top(ax.get_lines(), 1) * 1.15)
    ax.set_title(f"{_short(model)}: throughput vs p99 latency (labels: batch size)", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def speedup_vs_fp32(model: str, cases: list[CaseView]) -> Any | None:
    others = [c for c in cases if c.precision != "fp32" and c.speedup_vs_fp32 is not None and c.batch_size]
    if not others:
        return None
    series = precision_series(others)
    batches = sorted({c.batch_size for c in others if c.batch_size is not None})
    fig, ax = _figure()
    width = 0.8 / max(1, len(series))
    for index, (name, group) in enumerate(series.items()):
        by_batch = {c.batch_size: c.speedup_vs_fp32 for c in group}
        xs = [i + (index - (len(series) - 1) / 2) * width for i, b in enumerate(batches) if b in by_batch]
        ys = [by_batch[b] for b in batches if b in by_batch]
        style = _style(index + 1, name.split()[0])  # fp32 is the reference, never a bar
        bars = ax.bar(xs, ys, width=width * 0.95, label=name, color=style["color"])
        ax.bar_label(bars, labels=[f"{y:.2f}×" for y in ys], fontsize=7, padding=2)
    ax.axhline(1.0, color="#333333", linewidth=1, linestyle="--", label="fp32 = 1×")
    ax.set_xticks(range(len(batches)))
    ax.set_xticklabels([str(b) for b in batches])
    ax.set_xlabel("batch size (samples)")
    ax.set_ylabel("throughput speed-up vs fp32 (×)")
    ax.set_ylim(bottom=0, top=max(1.0, *[c.speedup_vs_fp32 or 0 for c in others]) * 1.18)
    ax.set_title(f"{_short(model)}: speed-up by precision vs fp32", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def baseline_vs_current(model: str, cases: list[CaseView]) -> Any | None:
    rows = []
    for case in cases:
        base = baseline_spread(case)
        lo, mid, hi = (latency(case, "min"), latency(case, "median"), latency(case, "p99"))
        if base is not None and lo is not None and mid is not None and hi is not None:
            rows.append((case, base, (lo, mid, hi)))
    if not rows:
        return None
    labels = [_short(case.id, 34) for case, _, _ in rows]
    fig, ax = _figure(
        height=max(2.4, 1.3 + 0.42 * len(rows)), left_px=20 + 7.4 * max(len(t) for t in labels), bottom_px=84
    )
    colours = {"baseline": OKABE_ITO[6], "current": OKABE_ITO[0], "current (regressed)": OKABE_ITO[3]}
    # One errorbar call per series (not per case): each call builds several artists, and models have many cases.
    series: dict[str, list[tuple[float, tuple[float, float, float]]]] = {name: [] for name in colours}
    for y, (case, base, cur) in enumerate(rows):
        series["baseline"].append((y + 0.17, base))
        series["current (regressed)" if case.label == "regressed" else "current"].append((y - 0.17, cur))
        delta = case.delta("latency_median_ms")
        if delta is not None:
            ax.annotate(
                f"{delta.change:+.1%}",
                (max(base[2], cur[2]), y),
                textcoords="offset points",
                xytext=(6, -3),
                fontsize=7,
                color=colours["current (regressed)"] if case.label == "regressed" else "#333333",
            )
    for name, points in series.items():
        if points:
            mids = [v[1] for _, v in points]
            ax.errorbar(
                mids,
                [y for y, _ in points],
                xerr=[[v[1] - v[0] for _, v in points], [v[2] - v[1] for _, v in points]],
                fmt="s" if name == "baseline" else "o",
                color=colours[name],
                capsize=3,
                markersize=5,
                label=name,
            )
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("latency per batch (ms): marker median, whiskers min–p99")
    ax.set_xlim(0, max(max(base[2], cur[2]) for _, base, cur in rows) * 1.18)  # room for the change labels
    ax.set_title(f"{_short(model)}: baseline vs current per case", fontsize=10)
    fig.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncols=3, frameon=False)
    return fig


def trend(item: Trend) -> Any | None:
    """A case's metric run after run from the history store: each run's value, the level between change points (the
    median of each segment), each change point with its size and p-value, the baseline the gate compares against
    and this run. None when fewer than two runs have a finite value."""
    from harness.core.metrics import METRICS, format_p_value

    points = [(i, finite(p.value)) for i, p in enumerate(item.series.points)]
    drawn = [(i, v) for i, v in points if v is not None]
    if len(drawn) < 2:
        return None
    metric = METRICS.get(item.series.metric)
    fig, ax = _figure(bottom_px=56)
    ax.plot(*zip(*drawn, strict=True), color=OKABE_ITO[0], marker="o", markersize=3, linewidth=1, label="run")
    edges = [0, *(c.index for c in item.changes), len(points)]
    levels = [c.before for c in item.changes[:1]] + [c.after for c in item.changes]
    if item.changes:  # the level of each segment, as the change points measured it
        for start, stop, level in zip(edges[:-1], edges[1:], levels, strict=True):
            ax.hlines(level, start - 0.5, stop - 0.5, color=OKABE_ITO[1], linewidth=2, alpha=0.9)
        ax.plot([], [], color=OKABE_ITO[1], linewidth=2, label="level between change points")
    for change in item.changes:
        colour = OKABE_ITO[3] if change.worse else OKABE_ITO[2]
        ax.axvline(change.index - 0.5, color=colour, linestyle="--", linewidth=1.2)
        ax.annotate(
            f"{change.change:+.1%}\n{format_p_value(change.p_value)}",
            (change.index - 0.5, 1.0),
            xycoords=("data", "axes fraction"),
            textcoords="offset points",
            xytext=(3, -4),
            va="top",
            fontsize=7,
            color=colour,
        )
    if item.changes:
        ax.plot([], [], color=OKABE_ITO[3], linestyle="--", label="change point (red: worse)")
    if item.baseline is not None and finite(item.baseline) is not None:
        ax.axhline(item.baseline, color=OKABE_ITO[6], linestyle=":", linewidth=1.2, label="baseline")
    here = item.current_index
    if here is not None and points[here][1] is not None:
        ring = {"marker": "o", "markersize": 10, "fillstyle": "none", "linestyle": "none", "color": OKABE_ITO[3]}
        ax.plot([here], [points[here][1]], label="this run", **ring)
    ticks = sorted({0, len(points) - 1, *(c.index for c in item.changes)})
    ax.set_xticks(ticks)
    ax.set_xticklabels([item.series.points[i].time[5:10] for i in ticks], fontsize=7)
    ax.set_xlim(-1, len(points))
    ax.set_xlabel(f"{len(points)} runs, oldest first (month-day)")
    ax.set_ylabel(f"{metric.label} ({metric.unit})" if metric else item.series.metric)
    values = [v for _, v in drawn] + ([item.baseline] if item.baseline is not None else [])
    low, high = min(values), max(values)
    ax.set_ylim(low - 0.15 * (high - low or high or 1), high + 0.3 * (high - low or high or 1))  # room for the labels
    ax.set_title(f"{_short(item.case_id, 50)}: {metric.label if metric else item.series.metric} over time", fontsize=10)
    ax.legend(fontsize=7, loc="best", ncols=2, framealpha=0.85)  # "best": the least covered corner of the runs
    return fig


def trend_png(item: Trend) -> bytes | None:
    """:func:`trend` as PNG bytes (``harness history plot`` writes them to files)."""
    fig = trend(item)
    return None if fig is None else _png(fig)


def trend_plots(trends: list[Trend]) -> list[Plot]:
    """The report's trend plots, one per case, in the order given."""
    out = []
    for item in trends:
        png = trend_png(item)
        if png is not None:
            file, title = f"{slug(item.case_id)}__trend.png", f"Trend: {item.case_id}"
            out.append(Plot(file, title, None, "trend", png, item.case_id))
    return out


def latency_distribution(case: CaseView) -> Any | None:
    """Empirical CDF of this run's per-iteration latency against the baseline's quantile sketch."""
    samples = [v for v in (finite(s) for s in case.case.samples.get("latency_ms") or []) if v is not None]
    if not samples:
        return None
    fig, ax = _figure()
    values = np.sort(np.asarray(samples, dtype=float))
    left_out = len(case.case.samples.get("latency_ms") or []) - len(samples)
    label = f"current ({left_out} NaN/inf not drawn)" if left_out else "current"
    ax.step(values, np.arange(1, values.size + 1) / values.size, where="post", color=OKABE_ITO[3], label=label)
    sketch = (case.case.baseline or {}).get("latency_quantiles_ms")
    if isinstance(sketch, list) and len(sketch) >= 2:
        levels = np.linspace(0, 1, len(sketch))
        points = [(finite(v), level) for v, level in zip(sketch, levels, strict=True)]
        kept = [(v, level) for v, level in points if v is not None]
        if kept:
            name = "baseline" if len(kept) == len(points) else "baseline (NaN/inf not drawn)"
            xs, ys = zip(*kept, strict=True)
            ax.plot(xs, ys, color=OKABE_ITO[6], marker="s", markersize=3, linewidth=1.2, label=name)
    for name, key, style in (("current p50", "median", "-"), ("current p99", "p99", ":")):
        value = latency(case, key)
        if value is not None:
            ax.axvline(value, color=OKABE_ITO[3], linestyle=style, linewidth=0.8, alpha=0.8, label=name)
    ax.set_xlabel("latency per batch (ms)")
    ax.set_ylabel("fraction of iterations ≤ x")
    ax.set_ylim(0, 1.02)
    delta = case.worst_delta
    change = f" ({delta.label} {delta.change:+.1%})" if delta else ""
    ax.set_title(f"{_short(case.id, 50)}: latency distribution{change}", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def where_the_time_went(attribution: CaseAttribution) -> Any | None:
    """Baseline vs current time of the groups with the largest deltas, the unattributed rest last; None when the case
    has nothing to compare with. Each pair of bars is labelled with its delta and its share of the change."""
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    rows: list[GroupRow] = attribution.group_rows()
    rest = [row for row in (attribution.others(), attribution.unattributed()) if row is not None]
    rows += rest
    if not rows:
        return None
    labels = [_short(row.label, 34) for row in rows]
    fig, ax = _figure(
        height=max(2.4, 1.3 + 0.5 * len(rows)), left_px=20 + 7.4 * max(len(t) for t in labels), bottom_px=84
    )
    ys = np.arange(len(rows))
    slower = OKABE_ITO[3]
    ax.barh(ys - 0.2, [max(0.0, r.baseline_ms) for r in rows], height=0.38, color=OKABE_ITO[6], label="baseline")
    colours = [slower if r.delta_ms > 0 and r.above_noise else OKABE_ITO[0] for r in rows]
    ax.barh(ys + 0.2, [max(0.0, r.current_ms) for r in rows], height=0.38, color=colours, label="current")
    for y, row in zip(ys, rows, strict=True):
        share = f" ({row.share:.0%})" if row.share is not None else ""
        ax.annotate(
            f"{signed_ms(row.delta_ms)} ms{share}",
            (max(row.baseline_ms, row.current_ms, 0.0), y),
            textcoords="offset points",
            xytext=(6, -3),
            fontsize=7,
            color=slower if row.delta_ms > 0 and row.above_noise else "#333333",
        )
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(FuncFormatter(_compact))
    ax.set_xlabel("time per inference (ms); label: delta (share of the change)")
    top = max(max(r.baseline_ms, r.current_ms) for r in rows)
    ax.set_xlim(0, (top if top > 0 else 1.0) * 1.3)  # room for the delta labels
    change = attribution.change
    total = f" ({change:+.1%})" if change is not None else ""
    ax.set_title(f"{_short(attribution.case_id, 50)}: where the time went{total}", fontsize=10)
    handles = [
        Patch(color=OKABE_ITO[6], label="baseline"),
        Patch(color=OKABE_ITO[0], label="current"),
        Patch(color=slower, label="current, slower beyond noise"),
    ]
    fig.legend(handles=handles, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncols=3, frameon=False)
    return fig


MODEL_PLOTS: tuple[tuple[str, str, Callable[[str, list[CaseView]], Any]], ...] = (
    ("latency", "Latency vs batch size", latency_vs_batch),
    ("throughput", "Throughput vs batch size", throughput_vs_batch),
    ("tradeoff", "Throughput vs p99 latency", throughput_vs_latency),
    ("speedup", "Speed-up vs fp32", speedup_vs_fp32),
    ("baseline", "Baseline vs current", baseline_vs_current),
)


PARALLEL_MIN_TASKS = 12  # below this, starting worker processes costs more than it saves


def _model_plots(task: tuple[str, list[CaseView]]) -> list[Plot]:
    """Every plot of one model (a top-level function: it runs in worker processes too)."""
    model, cases = task
    out = []
    not_drawn = not_finite_ids(cases)
    for kind, title, draw in MODEL_PLOTS:
        fig = draw(model, cases)
        if fig is not None:
            note = _note_not_drawn(fig, not_drawn)
            caption = f"{title}: {model}" + (f" ({note})" if note else "")
            out.append(Plot(f"{slug(model)}__{kind}.png", caption, model, kind, _png(fig)))
    return out


def _distribution_plots(cases: list[CaseView]) -> list[Plot]:
    out = []
    for case in cases:
        fig = latency_distribution(case)
        if fig is not None:
            title = f"Latency distribution: {case.id}"
            out.append(
                Plot(f"{slug(case.id)}__distribution.png", title, case.model, "distribution", _png(fig), case.id)
            )
    return out


def _attribution_plots(attribution: CaseAttribution) -> list[Plot]:
    fig = where_the_time_went(attribution)
    if fig is None:
        return []
    file, title = f"{slug(attribution.case_id)}__where.png", f"Where the time went: {attribution.case_id}"
    return [Plot(file, title, attribution.model, "attribution", _png(fig), attribution.case_id)]


def _run(task: tuple[str, Any]) -> list[Plot]:
    kind, payload = task
    if kind == "attribution":
        return _attribution_plots(payload)
    return _model_plots(payload) if kind == "model" else _distribution_plots(payload)


def _workers(tasks: int) -> int:
    if tasks < PARALLEL_MIN_TASKS:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8, tasks))


def render_plots(view: ReportView, workers: int | None = None) -> tuple[list[Plot], list[str]]:
    """Every plot the view supports, and the ids of regressed cases whose distribution was not drawn.

    Drawing is CPU-bound and each figure is independent, so a large report draws in a pool of worker processes
    (``spawn``: safe in a process that holds backend threads, e.g. at the end of a pytest session); a small one, or
    a machine with one CPU, draws in this process. The output is the same either way, in the same order.
    """
    shown = view.with_label("regressed", "ambiguous")
    left_out = [c.id for c in shown[MAX_DISTRIBUTIONS:]]
    tasks: list[tuple[str, Any]] = [("model", (model, view.model_cases(model))) for model in view.models]
    tasks += [("distribution", [case]) for case in shown[:MAX_DISTRIBUTIONS]]
    compared = [a for a in report_attributions(view)[0] if a.diff is not None]
    tasks += [("attribution", attribution) for attribution in compared[:MAX_ATTRIBUTIONS]]
    workers = _workers(len(tasks)) if workers is None else workers
    if workers > 1:
        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                return [plot for plots in pool.map(_run, tasks) for plot in plots], left_out
        except (OSError, RuntimeError):  # no processes allowed here (a sandbox, a daemon): draw in this one
            pass
    return [plot for task in tasks for plot in _run(task)], left_out
