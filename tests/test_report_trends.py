"""The report's trend section (harness.view.trends, harness.report.plots.trend): given a history store, each case
gets its series under the run's baseline key, with change points and the baseline marked."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from suite_runner import BENCH_MODULE, run_suite

from harness.cli.main import main
from harness.core.fsio import write_json
from harness.history.store import HistoryStore, run_info
from harness.models.sources import zoo_dir
from harness.report import write_reports
from harness.report.plots import trend, trend_png
from harness.view.report_view import build_view
from harness.view.trends import MAX_TRENDS, Trend, load_trends
from tests.test_history_store import KEY, synthetic_run

pytest_plugins = ["pytester"]

CASES = ("resnet50-fp32-b1", "resnet50-fp32-b4", "squeezenet-fp32-b1", "squeezenet-fp32-b4")


def store_of(tmp_path: Path, step: float, runs: int = 40, key: str = KEY) -> str:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    with HistoryStore(url) as store:
        for i in range(runs):
            results = synthetic_run(i, step_at=25, step=step, key=key)
            store.append(results, run_info(results, "import"))
    return url


@pytest.fixture
def last_run():
    """The newest run of the store, as its results file would hold it (with a baseline for the latency)."""
    results = synthetic_run(39, step_at=25, step=0.06)
    for case in results.cases:
        case.comparisons = [
            {"metric": "latency_median_ms", "baseline": 4.0, "current": case.metrics["latency_median_ms"],
             "change": 0.0, "tolerance": 0.1, "verdict": "unchanged"}
        ]  # fmt: skip
    return results


def test_a_store_with_a_step_gives_each_case_a_trend_with_its_change_point(tmp_path, last_run):
    url = store_of(tmp_path, step=0.06)

    section = load_trends(build_view(last_run), url)

    assert sorted(t.case_id for t in section.trends) == sorted(CASES)
    assert section.without_history == [] and section.not_drawn == []
    for item in section.trends:
        assert item.series.metric == "latency_median_ms" and item.series.baseline_key == KEY
        assert len(item.series.points) == 40
        assert item.current_index == 39  # the report's own run is the store's newest
        (change,) = item.changes
        assert abs(change.index - 25) <= 1 and change.worse and 0.03 < change.change < 0.09


def test_the_report_page_shows_the_trends_with_change_points_and_the_plots_are_written(tmp_path, last_run):
    url = store_of(tmp_path, step=0.06)

    files = write_reports(last_run, tmp_path / "report", history=url)

    html = files.html.read_text()
    assert '<section id="trends">' in html and '<a href="#trends">' in html
    assert html.count('<article class="trend"') == 4
    assert len(re.findall(r"<td class=\"num worse\">\+[3-9]\.\d%</td>", html)) == 4
    # the first run at the new level (run 25 = day 2, 01:00) and the commits either side of the step, in full
    assert len(re.findall(r"<code>20260102T0[012]0000Z-[0-9a-f]{16}</code>", html)) == 4
    assert len(re.findall(r'<code title="0{38}(18|19|1a)\.\.0{38}(19|1a|1b)">', html)) == 4
    assert "p&lt;0.001" in html
    trend_files = sorted(p.name for p in files.plots if p.name.endswith("__trend.png"))
    assert len(trend_files) == 4 and all((files.out_dir / "plots" / name).is_file() for name in trend_files)


def test_a_steady_store_shows_trends_without_change_points(tmp_path, last_run):
    url = store_of(tmp_path, step=0.0)

    html = write_reports(last_run, tmp_path / "report", history=url).html.read_text()

    assert html.count('<article class="trend"') == 4
    assert html.count("No change point in 40 runs.") == 4


def test_another_baseline_key_is_not_this_runs_history(tmp_path, last_run):
    url = store_of(tmp_path, step=0.06, key="gpu-h200__tensorrt-10.13")

    section = load_trends(build_view(last_run), url)
    html = write_reports(last_run, tmp_path / "report", history=url).html.read_text()

    assert section.trends == [] and sorted(section.without_history) == sorted(CASES)
    assert "No history yet (fewer than two runs in the store)" in html


def test_without_a_store_the_report_has_no_trend_section(tmp_path, last_run):
    html = write_reports(last_run, tmp_path / "report").html.read_text()

    assert 'id="trends"' not in html and "#trends" not in html


def test_a_store_that_cannot_be_read_is_named_in_the_report_which_is_still_written(tmp_path, last_run, capsys):
    not_a_db = tmp_path / "notes.db"
    not_a_db.write_text("these are notes, not a database\n")
    url = f"sqlite:///{not_a_db}"

    html = write_reports(last_run, tmp_path / "report", history=url).html.read_text()

    (problem,) = re.findall(r'<p class="msg bad-text">No trends: ([^<]*)</p>', html)
    assert "notes.db" in problem and "\n" not in problem
    write_json(tmp_path / "results.json", last_run.to_dict())
    assert main(["report", str(tmp_path / "results.json"), "-o", str(tmp_path / "out"), "--history", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("harness report: error: ") and "notes.db" in err and err.count("\n") == 1
    assert not (tmp_path / "out" / "report.html").exists()  # asked for by name: refused before any work


def test_harness_report_takes_history(tmp_path, last_run, capsys):
    url = store_of(tmp_path, step=0.06)
    write_json(tmp_path / "results.json", last_run.to_dict())

    status = main(["report", str(tmp_path / "results.json"), "-o", str(tmp_path / "out"), "--history", url])

    assert status == 0, capsys.readouterr().err
    assert '<section id="trends">' in (tmp_path / "out" / "report.html").read_text()
    status = main(["report", str(tmp_path / "results.json"), "-o", str(tmp_path / "out"), "--history", "mysql+nope://"])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("harness report: error: ") and err.count("\n") == 1


def test_a_trend_plot_needs_two_runs_and_marks_what_it_is_given(tmp_path):
    url = store_of(tmp_path, step=0.06, runs=30)
    with HistoryStore(url) as store:
        (series,) = store.series("resnet50-fp32-b1", metric="latency_median_ms")
    from harness.history.changes import detect

    item = Trend(series, tuple(detect(series)), baseline=series.values[0], current_run=series.points[-1].run_id)
    fig = trend(item)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["run", "level between change points", "change point (red: worse)", "baseline", "this run"]
    png = trend_png(item)
    assert png is not None and png.startswith(b"\x89PNG")

    single = Trend(type(series)(series.suite, series.case_id, series.metric, KEY, series.points[:1]), (), None)
    assert trend(single) is None


def test_trends_beyond_the_limit_are_listed_not_drawn(tmp_path, last_run, monkeypatch):
    monkeypatch.setattr("harness.view.trends.MAX_TRENDS", 1)
    url = store_of(tmp_path, step=0.0, runs=5)

    section = load_trends(build_view(last_run), url)

    assert MAX_TRENDS > 1 and len(section.trends) == 1 and len(section.not_drawn) == 3


def test_a_pytest_run_with_history_reports_the_trend_of_each_case_it_appended_to(pytester, monkeypatch):
    monkeypatch.delenv("HARNESS_HISTORY", raising=False)
    pytester.makepyfile(test_bench=BENCH_MODULE)
    shutil.copy(zoo_dir() / "light_squeezenet.onnx", pytester.path / "net.onnx")
    (pytester.path / "suite.yaml").write_text(
        "suite: demo\nmodels:\n  - name: net\n    path: net.onnx\nbatch_sizes: [1]\n"
        "backends:\n  onnxruntime: {intra_op_threads: 1}\n"
    )
    store = f"sqlite:///{pytester.path / 'history.db'}"
    fast = ["--warmup-ms", "20", "--min-duration-ms", "100", "--min-iterations", "5", "--trials", "3"]

    run_suite(pytester, *fast, "--history", store).assert_outcomes(passed=1)
    first = (pytester.path / "reports" / "report.html").read_text()
    run_suite(pytester, *fast, "--history", store).assert_outcomes(passed=1)
    second = (pytester.path / "reports" / "report.html").read_text()

    assert "No history yet (fewer than two runs in the store): net-fp32-b1" in first
    assert second.count('<article class="trend"') == 1 and "· 2 runs ·" in second
    assert len(list((pytester.path / "reports" / "plots").glob("*__trend.png"))) == 1
