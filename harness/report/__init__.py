"""Renderings of result records: terminal table, HTML page with PNG plots, markdown summary, pytest-benchmark JSON.

:func:`write_reports` is the one entry point (used by the pytest plugin at the end of a session and by
``harness report``). What the reports show is computed by :mod:`harness.view`; the modules here only render it.
They read result records only; they never measure and never import a backend. matplotlib and Jinja2 are imported
inside the functions that draw or render, so the terminal table does not load them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from harness.core.fsio import atomic_write_bytes, atomic_write_text, write_json
from harness.core.results import RunResults
from harness.report.export import to_pytest_benchmark
from harness.report.html import render_html
from harness.report.markdown import render_markdown
from harness.report.plots import render_plots, trend_plots
from harness.view.rebase import apply_baseline
from harness.view.report_view import build_view
from harness.view.trends import load_trends

HTML_NAME, MARKDOWN_NAME, BENCHMARK_NAME, PLOTS_DIR = "report.html", "summary.md", "benchmark.json", "plots"


@dataclass
class ReportFiles:
    """What :func:`write_reports` wrote."""

    out_dir: Path
    html: Path
    markdown: Path
    benchmark_json: Path
    plots: list[Path] = field(default_factory=list)
    summary: str = ""  # the markdown text, for $GITHUB_STEP_SUMMARY
    headline: str = ""
    results: RunResults | None = None  # what the reports show (judged again when a baseline was given)


def _display_path(path: Path) -> str:
    """Relative to the working directory when below it (what a CI log or artifact shows), else absolute."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    return str(path.resolve()) if relative.startswith("..") else relative


def write_reports(
    results: RunResults | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    baseline: str | os.PathLike[str] | None = None,
    source: str | None = None,
    history: str | None = None,
) -> ReportFiles:
    """Write report.html, plots/*.png, summary.md and benchmark.json into ``out_dir`` (each file atomically).

    ``results`` is a :class:`RunResults` or the path of a results.json. ``baseline``, when given, replaces the
    baselines recorded in the results: another run's results.json, a baseline file, or a baseline directory
    (see :mod:`harness.view.rebase`); verdicts are then judged again by :mod:`harness.judge.gate`. ``history``,
    when given, is a history store's URL: the page gets a trend plot per case from it, with change points and the
    baseline marked (:mod:`harness.view.trends`); a store that cannot be read is named there, not raised.
    """
    if not isinstance(results, RunResults):
        source = source or str(results)
        results = RunResults.read(Path(results))
    baseline_source = None
    if baseline is not None:
        results, baseline_source = apply_baseline(results, Path(baseline))
    out = Path(out_dir)
    view = build_view(results, baseline_source)
    trends = load_trends(view, history) if history else None
    plots, left_out = render_plots(view)
    trend_pngs = trend_plots(trends.trends) if trends else []

    plot_dir = out / PLOTS_DIR
    written = []
    for plot in plots + trend_pngs:
        path = plot_dir / plot.file
        atomic_write_bytes(path, plot.png)
        written.append(path)
    if plot_dir.is_dir():  # plots of an earlier report whose cases are gone would mislead a reader
        keep = {p.name for p in written}
        for stale in plot_dir.glob("*.png"):
            if stale.name not in keep:
                stale.unlink(missing_ok=True)

    html_path, md_path, json_path = out / HTML_NAME, out / MARKDOWN_NAME, out / BENCHMARK_NAME
    page = render_html(view, plots, left_out, source=source or "results.json", trends=trends, trend_plots=trend_pngs)
    atomic_write_text(html_path, page)
    summary = render_markdown(view, report_path=_display_path(html_path), trends=trends.trends if trends else ())
    atomic_write_text(md_path, summary)
    write_json(json_path, to_pytest_benchmark(results))
    return ReportFiles(out, html_path, md_path, json_path, written, summary, view.headline, results)


def append_step_summary(summary: str) -> Path | None:
    """Append the markdown summary to ``$GITHUB_STEP_SUMMARY`` when GitHub Actions sets it; return that path."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    with open(target, "a", encoding="utf-8") as handle:  # appended, not replaced: other steps write there too
        handle.write(summary if summary.endswith("\n") else summary + "\n")
    return Path(target)
