"""report.html: one self-contained page (plots as base64 data URIs, CSS and the sort script inline, no network).

Rendered with Jinja2 and autoescaping on, so model names, paths and error text from the records are always shown as
text, never interpreted as markup.
"""

from __future__ import annotations

import base64
import math
import struct
from pathlib import Path
from typing import Any

import harness
from harness.core.metrics import format_p_value
from harness.report.plots import Plot
from harness.view.attribution import MAX_LAYERS, CaseAttribution, percent, report_attributions, signed_ms
from harness.view.cells import ms, size, slug, sps, whole
from harness.view.report_view import ReportView
from harness.view.trends import TrendSection
from harness.view.verdicts import LABELS

TEMPLATES = Path(__file__).parent / "templates"


def _png_size(png: bytes) -> tuple[int, int]:
    """Width and height in pixels from the PNG header (IHDR), so the page reserves the space before decoding."""
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)


def _num(value: Any) -> str:
    """A sort key for data-v: plain number text, '' for missing or non-finite."""
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return ""
    return repr(float(value))


def _environment() -> Any:
    import jinja2  # here, not at the top: the terminal table (harness.report.terminal) must not load Jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ms=ms, sps=sps, size=size, whole=whole)
    return env


def _plot_entry(plot: Plot) -> dict[str, Any]:
    width, height = _png_size(plot.png)
    return {
        "title": plot.title,
        "file": plot.file,
        "uri": "data:image/png;base64," + base64.b64encode(plot.png).decode("ascii"),
        # The intrinsic size lets the page lay out before the images decode; CSS scales them down on small screens.
        "width": width,
        "height": height,
    }


def _regressions_title(view: ReportView) -> str:
    parts = [f"{view.counts.get(k, 0)} {k}" for k in ("regressed", "ambiguous", "missing") if view.counts.get(k)]
    return "Regressions first: " + ", ".join(parts)


def _where_entries(view: ReportView, plots: list[Plot]) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """The "where the time went" section: per case with a layer profile its groups, layer rows and plot; the cases
    whose plot was left out; the profiles that could not be read."""
    drawn = {plot.case_id: _plot_entry(plot) for plot in plots if plot.kind == "attribution"}
    labels = {c.id: c.label for c in view.cases}
    shown, problems = report_attributions(view)
    entries = [_where_entry(a, drawn.get(a.case_id), labels.get(a.case_id, "")) for a in shown]
    left_out = [a.case_id for a in shown if a.diff is not None and a.case_id not in drawn]
    return entries, left_out, problems


def _where_entry(attribution: CaseAttribution, plot: dict[str, Any] | None, label: str) -> dict[str, Any]:
    layers = attribution.layer_rows()
    rest = [row for row in (attribution.others(), attribution.unattributed()) if row is not None]
    return {
        "attribution": attribution,
        "anchor": slug(attribution.case_id),
        "label": label,
        "plot": plot,
        "groups": attribution.group_rows() + rest,
        "layers": layers[:MAX_LAYERS],
        "more_layers": max(0, len(layers) - MAX_LAYERS),
        "has_precision": any(row.precision for row in layers),
        "has_tactic": any(row.tactic for row in layers),
    }


def _trend_entries(section: TrendSection, plots: list[Plot]) -> list[dict[str, Any]]:
    """The trend section: per case its plot and change points, newest first."""
    drawn = {plot.case_id: _plot_entry(plot) for plot in plots}
    return [
        {
            "trend": t,
            "plot": drawn[t.case_id],
            "changes": [(c, format_p_value(c.p_value)) for c in reversed(t.changes)],
        }
        for t in section.trends
        if t.case_id in drawn
    ]


def render_html(
    view: ReportView,
    plots: list[Plot],
    left_out: list[str],
    source: str = "results.json",
    trends: TrendSection | None = None,
    trend_plots: list[Plot] | None = None,
) -> str:
    rank = {label: index for index, label in enumerate(LABELS)}
    order = {c.id: i for i, c in enumerate(view.cases)}
    table = sorted(view.cases, key=lambda c: (rank.get(c.label, len(LABELS)), order[c.id]))
    model_plots: dict[str, list[dict[str, Any]]] = {}
    for plot in plots:
        if plot.kind not in ("distribution", "attribution"):
            model_plots.setdefault(plot.model or "", []).append(_plot_entry(plot))
    suites = ", ".join(view.results.suites) or "benchmark"
    where, where_left_out, where_problems = _where_entries(view, plots)
    regressions = view.with_label("regressed", "ambiguous", "missing")
    context = {
        "title": f"{suites}: benchmark report",
        "view": view,
        "headline_class": "fail" if view.failing else ("empty" if not view.total else "pass"),
        "regressions": regressions,
        "regressions_title": _regressions_title(view),
        "has_evidence": any(d.evidence for c in regressions for d in c.deltas),
        "warned": [c for c in view.cases if c.case.warnings],
        "failures": view.with_label("failed"),
        "nonfinite": [c for c in view.cases if c.nonfinite],
        "with_inputs": [c for c in view.cases if c.inputs],
        "improvements": view.with_label("improved"),
        # ambiguous cases say it in their verdict already; elsewhere such a delta would go unexplained
        "undecided": [(c, d) for c in table if c.label != "ambiguous" for d in c.deltas if d.not_deciding],
        "probed": [c for c in view.cases if c.probe_correction],
        "table": table,
        "rank": {**rank, **{c.label: rank.get(c.label, len(LABELS)) for c in view.cases}},
        "has_shapes": any(c.shape for c in view.cases),
        "has_speedup": any(c.speedup_vs_fp32 is not None and c.precision != "fp32" for c in view.cases),
        "has_cache": any(c.cache_hit is not None for c in view.cases),
        "has_accuracy": any(c.accuracy for c in view.cases),
        "model_plots": list(model_plots.items()),
        "distributions": [_plot_entry(p) for p in plots if p.kind == "distribution"],
        "left_out": left_out,
        "attributions": where,
        "where_left_out": where_left_out,
        "where_problems": where_problems,
        "signed_ms": signed_ms,
        "percent": percent,
        "num": _num,
        "source": source,
        "harness_version": harness.__version__,
        "trend_section": trends,
        "trends": _trend_entries(trends, trend_plots or []) if trends else [],
    }
    return str(_environment().get_template("report.html.j2").render(**context))
