"""Trend lines of the markdown summary: sparklines of a case's last runs and its newest change point."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from report_sample import sample_results

from harness.history.series import Point, Series
from harness.report.markdown import render_markdown
from harness.view.report_view import build_view
from harness.view.trend_lines import BARS, sparkline, summary_trends, trend_line, trend_text


@dataclass(frozen=True)
class Change:  # the fields of harness.history.changes.ChangePoint a line reads
    index: int
    change: float
    commit: str | None
    time: str


@dataclass(frozen=True)
class Trend:  # the fields of harness.view.trends.Trend the summary reads
    series: Series
    changes: tuple[Change, ...] = ()
    current_index: int | None = None


def series(values: list[float], case: str = "net-fp32-b1", metric: str = "latency_median_ms") -> Series:
    points = tuple(
        Point(f"run{i}", f"2026-01-{i + 1:02d}T00:00:00+00:00", f"{i:07x}abcdef", "main", v)
        for i, v in enumerate(values)
    )
    return Series("demo", case, metric, "key", points)


def test_sparkline_scales_between_the_lowest_and_highest_value():
    assert sparkline([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]) == BARS
    assert sparkline([10.0, 10.6]) == "▁█"
    assert sparkline([5.0, 5.0, 5.0]) == "▄▄▄"  # flat: no spread to show, mid-height
    assert sparkline([1.0, math.nan, 2.0]) == "▁ █"  # a failed run is a gap
    assert sparkline([]) == ""


def test_a_line_names_the_newest_change_point_and_its_first_commit():
    values = [1.0] * 24 + [1.061] * 16
    line = trend_line(series(values), [Change(10, -0.02, "aaaaaaa000", "t"), Change(24, 0.061, "0000018abcdef", "t")])
    assert line == "▁" * 4 + "█" * 16 + " +6.1% since 0000018"
    assert (
        trend_text(series(values), [Change(24, 0.061, None, "2026-01-25T00:00:00+00:00")]) == "+6.1% since 2026-01-25"
    )
    assert trend_line(series([1.0, 1.01, 0.99])) == "▅█▁ no change point in 3 runs"


def test_the_summary_shows_trends_of_changed_cases_and_of_changes_at_this_run():
    results = sample_results(n_cases=12)
    view = build_view(results)
    regressed = next(c.id for c in view.cases if c.label == "regressed")
    quiet = [c.id for c in view.cases if c.label == "unchanged"]
    trends = [
        Trend(series([1.0] * 10 + [1.25] * 3, case=regressed), (Change(10, 0.25, "feedbeef00", "t"),), 12),
        Trend(series([1.0] * 8, case=quiet[0])),  # unchanged, no change point: not news
        Trend(series([1.0] * 8 + [1.04] * 4, case=quiet[1]), (Change(8, 0.04, "c0ffee000", "t"),), 8),  # news now
        Trend(series([1.0] * 8 + [1.04] * 4, case=quiet[2]), (Change(8, 0.04, "c0ffee000", "t"),), 11),  # older
    ]
    assert [t.series.case_id for t in summary_trends(view, trends)] == [regressed, quiet[1]]

    summary = render_markdown(view, trends=trends)
    assert "**Trends (last 20 runs in the history store):**" in summary
    rows = [line for line in summary.splitlines() if line.startswith("| ") and "` " in line]
    escaped = regressed.replace("<", "&lt;").replace(">", "&gt;")
    assert rows == [
        f"| {escaped} | latency p50 | `{'▁' * 10}███` +25.0% since feedbee |",
        f"| {quiet[1]} | latency p50 | `{'▁' * 8}████` +4.0% since c0ffee0 |",
    ]
    assert summary.index("**Trends") < summary.index("Environment:")
    assert "**Trends" not in render_markdown(view)  # no store given: no section


def test_harness_report_with_a_store_puts_the_trend_lines_in_the_summary(tmp_path, capsys):
    import numpy as np

    from harness.cli.main import main
    from harness.history.store import HistoryStore, run_info

    rng = np.random.default_rng(7)
    url = f"sqlite:///{tmp_path / 'history.db'}"
    regressed = ""
    with HistoryStore(url) as store:
        for i in range(30):
            results = sample_results(n_cases=6)
            results.environment |= {"date": f"2026-02-{i + 1:02d}T00:00:00+00:00"}
            results.environment["commit"] = {"id": f"c{i:02d}{'0' * 37}", "branch": "main", "dirty": False}
            case = next(c for c in results.cases if c.verdict == "regressed")
            regressed = case.id
            factor = (1.08 if i >= 20 else 1.0) * float(rng.lognormal(0.0, 0.01))
            case.metrics = {k: v * factor if k.startswith("latency") else v for k, v in case.metrics.items()}
            store.append(results, run_info(results, "import"))
    path = tmp_path / "run" / "results.json"
    results.write(path)

    assert main(["report", str(path), "--history", url, "--no-step-summary"]) == 0
    summary = (tmp_path / "run" / "summary.md").read_text(encoding="utf-8")
    escaped = regressed.replace("<", "&lt;").replace(">", "&gt;")
    (row,) = [line for line in summary.splitlines() if line.startswith(f"| {escaped} | latency p50 | `")]
    bars, text = row.split("`")[1], row.split("`")[2]
    assert len(bars) == 20 and set(bars[:10]) <= set("▁▂▃") and set(bars[10:]) <= set("▆▇█")
    assert re.fullmatch(r" \+[78]\.\d% since c200000 \|", text), text
