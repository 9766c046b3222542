"""A case's history in one line of text, for the markdown summary (``$GITHUB_STEP_SUMMARY``, the PR comment):
``▁▁▂▁▁▇▇█ +6.1% since abc1234``.

The bars are a sparkline (Tufte, "Beautiful Evidence", 2006: a word-sized graphic) of the series' last runs, scaled
between their minimum and maximum; the text is the newest change point the history store's detection found (its
size and the first commit at the new level), or that there is none. Reads a series and its change points
(:mod:`harness.history.series`, :mod:`harness.history.changes`), nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from harness.core.metrics import format_change
from harness.history.series import Series
from harness.view.report_view import ReportView

BARS = "▁▂▃▄▅▆▇█"
WIDTH = 20  # runs a line shows: enough to see a step and the level before it, short enough for a table cell
CHANGED_LABELS = ("regressed", "ambiguous", "missing", "improved")  # cases whose verdict says they moved


class ChangeLike(Protocol):
    """What a line needs of a change point (:class:`harness.history.changes.ChangePoint`)."""

    @property
    def index(self) -> int: ...
    @property
    def change(self) -> float: ...
    @property
    def commit(self) -> str | None: ...
    @property
    def time(self) -> str: ...


class TrendLike(Protocol):
    """What the summary needs of a case's trend (:class:`harness.view.trends.Trend`)."""

    @property
    def series(self) -> Series: ...
    @property
    def changes(self) -> Sequence[ChangeLike]: ...
    @property
    def current_index(self) -> int | None: ...


def sparkline(values: Sequence[float]) -> str:
    """One bar per value, ``▁`` the lowest and ``█`` the highest; a value that is not finite is a space, and a flat
    series (no spread at all) is drawn mid-height."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return " " * len(values)
    low, high = min(finite), max(finite)
    top = len(BARS) - 1
    bars = []
    for value in values:
        if not math.isfinite(value):
            bars.append(" ")
        elif high == low:
            bars.append(BARS[top // 2])
        else:
            bars.append(BARS[round((value - low) / (high - low) * top)])
    return "".join(bars)


def trend_line(series: Series, changes: Sequence[ChangeLike] = (), width: int = WIDTH) -> str:
    """``▁▁▂▁▁▇▇█ +6.1% since abc1234``: :func:`sparkline` of the last ``width`` runs and :func:`trend_text`."""
    return f"{sparkline(series.values[-width:])} {trend_text(series, changes)}"


def trend_text(series: Series, changes: Sequence[ChangeLike] = ()) -> str:
    """``+6.1% since abc1234``: the newest change point's size and the first run at the new level (its commit,
    else its date); ``no change point in 40 runs`` when there is none."""
    if not changes:
        runs = len(series.points)
        return f"no change point in {runs} run{'s' if runs != 1 else ''}"
    newest = max(changes, key=lambda c: c.index)
    since = newest.commit[:7] if newest.commit else newest.time[:10]
    return f"{format_change(newest.change)} since {since}"


def summary_trends(view: ReportView, trends: Sequence[TrendLike]) -> list[TrendLike]:
    """The trends a summary shows: of the cases whose verdict moved (:data:`CHANGED_LABELS`), and of any case
    whose series has a change point at this very run, in the order of ``trends``."""
    changed = {case.id for case in view.with_label(*CHANGED_LABELS)}
    return [t for t in trends if t.series.case_id in changed or is_news(t.changes, t.current_index)]


def is_news(changes: Sequence[ChangeLike], current_index: int | None) -> bool:
    """A change point at this run: the history sees a step the gate's verdict may not have called."""
    return current_index is not None and any(c.index == current_index for c in changes)
