"""The report's trends: per case, its series in the history store (this run's baseline key only), the change points
found in it and the baseline value the gate compared against, for :func:`harness.report.plots.trend`.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.core.errors import HarnessError
from harness.history.changes import MAX_P, MIN_CHANGE, ChangePoint, detect
from harness.history.series import Series
from harness.view.cases import CaseView
from harness.view.report_view import ReportView

# The metric a case's trend shows: the one its worst gated comparison moved, else the first of these it has.
TREND_METRICS = ("latency_median_ms", "throughput_sps")
MAX_TRENDS = 64  # trend plots per report, regressed and ambiguous cases first; the rest are listed, not drawn


@dataclass(frozen=True)
class Trend:
    series: Series
    changes: tuple[ChangePoint, ...]
    baseline: float | None  # the value the gate compared against, where the case had a baseline
    current_run: str | None = None  # the run id of the report's own run, when the store holds it

    @property
    def case_id(self) -> str:
        return self.series.case_id

    @property
    def current_index(self) -> int | None:
        """This run's position in the series (None when the store does not hold it)."""
        return next((i for i, p in enumerate(self.series.points) if p.run_id == self.current_run), None)


@dataclass(frozen=True)
class TrendSection:
    """What the report's trend section shows: the store it read, the trends drawn, the cases left out."""

    store: str  # the store's URL as shown (no password)
    key: str  # the baseline key whose series are shown
    trends: list[Trend]
    not_drawn: list[str]  # cases past MAX_TRENDS
    without_history: list[str]  # cases with fewer than two runs in the store
    problem: str = ""  # why the store could not be read, when it could not

    @property
    def rule(self) -> str:
        """When two levels count as a change, in words."""
        return f"Student's t-test p<{MAX_P:g} and at least {MIN_CHANGE:.0%} apart"


def load_trends(view: ReportView, url: str) -> TrendSection:
    """The trends of the report's cases from the history store at ``url``, under the run's own baseline key (a
    store holding other machines' runs shows none of them here). A store that cannot be opened or read leaves the
    section with its one-line reason: the report of a finished run is never lost to its history."""
    from harness.history.store import HistoryStore, run_info

    key = str(view.environment.get("key") or "unknown")
    metrics = {*TREND_METRICS, *(d.metric for c in view.cases for d in c.deltas)}
    try:
        with HistoryStore(url, create=False) as store:
            series = [s for metric in sorted(metrics) for s in store.series(metric=metric, baseline_key=key)]
            display = store.display
    except HarnessError as exc:
        return TrendSection(url, key, [], [], [], problem=str(exc))
    trends = report_trends(view, series, run_info(view.results, "import").run_id)
    shown = {t.case_id for t in trends}
    return TrendSection(
        display,
        key,
        trends[:MAX_TRENDS],
        [t.case_id for t in trends[MAX_TRENDS:]],
        [c.id for c in view.cases if c.id not in shown],
    )


def trend_metric(case: CaseView, available: set[str]) -> str | None:
    worst = case.worst_delta
    if worst is not None and worst.metric in available:
        return worst.metric
    return next((m for m in TREND_METRICS if m in available), None)


def report_trends(view: ReportView, series: list[Series], current_run: str | None = None) -> list[Trend]:
    """One trend per case of ``view`` that has a series of two runs or more in ``series`` (the store's series of
    this run's baseline key), in the order of the report's cases: regressed and ambiguous first."""
    by_case: dict[str, list[Series]] = {}
    for s in series:
        if len(s.points) >= 2:  # one run is a point, not a trend
            by_case.setdefault(s.case_id, []).append(s)
    ordered = view.with_label("regressed", "ambiguous")
    first = {c.id for c in ordered}
    ordered += [c for c in view.cases if c.id not in first]
    trends = []
    for case in ordered:
        # A case recorded without its suite's name is its run's only suite: matched by id alone.
        metrics = {s.metric: s for s in by_case.get(case.id, []) if not case.suite or s.suite == case.suite}
        metric = trend_metric(case, set(metrics))
        if metric is None:
            continue
        delta = case.delta(metric)
        chosen = metrics[metric]
        trends.append(Trend(chosen, tuple(detect(chosen)), delta.baseline if delta else None, current_run))
    return trends
