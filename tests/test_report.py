"""Reports from result records: report.html, plots, summary.md, benchmark.json, harness report, --baseline."""

from __future__ import annotations

import base64
import copy
import json
import re
import statistics
import subprocess
import sys

import pytest
from report_sample import sample_results

from harness.cli import main as cli
from harness.core.results import CaseResult, RunResults
from harness.report import write_reports
from harness.report.markdown import escape
from harness.view.cells import slug
from harness.view.report_view import build_view
from harness.view.verdicts import label_of

EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def results() -> RunResults:
    return sample_results(45, samples_per_case=200)


@pytest.fixture(scope="module")
def small() -> RunResults:
    """Enough for the tests that do not count verdicts: every kind of case, fewer plots to draw."""
    return sample_results(14, samples_per_case=100)


@pytest.fixture(scope="module")
def report(results: RunResults, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("report")
    return write_reports(results, out)


def test_every_file_is_written(report):
    assert report.html.is_file() and report.markdown.is_file() and report.benchmark_json.is_file()
    pngs = sorted((report.out_dir / "plots").glob("*.png"))
    assert pngs == sorted(report.plots)
    # 3 models x 5 plots, and one distribution per regressed or ambiguous case
    kinds = {p.name.split("__")[1] for p in pngs}
    assert kinds == {"latency.png", "throughput.png", "tradeoff.png", "speedup.png", "baseline.png", "distribution.png"}
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert re.fullmatch(r"[a-z0-9-]+__[a-z]+\.png", png.name), png.name


def test_html_is_self_contained(report):
    html = report.html.read_text(encoding="utf-8")
    assert not re.search(r"https?:", html, re.IGNORECASE)
    assert not re.search(r"<(link|iframe|object|embed)\b", html, re.IGNORECASE)
    assert re.findall(r"<img [^>]*src=\"([^\"]{0,22})", html) and all(
        src.startswith("data:image/png;base64,") for src in re.findall(r"<img [^>]*src=\"([^\"]{0,22})", html)
    )
    # every PNG written to plots/ is the one embedded in the page
    embedded = {base64.b64decode(m) for m in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)}
    assert embedded == {p.read_bytes() for p in report.plots}
    assert html.count("<script>") == 1  # the sort script, nothing else


def test_user_text_is_escaped_in_html(report):
    html = report.html.read_text(encoding="utf-8")
    assert EVIL not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;Myelin&gt; tactic &amp; &#39;fusion&#39; | failed" in html  # error text of the failed cases


def test_html_shows_verdicts_and_regressions_first(report, results):
    html = report.html.read_text(encoding="utf-8")
    view = build_view(results)
    assert view.headline in html and view.headline.startswith("FAIL: 5 regressed, 4 failed, 4 ambiguous")
    for label, n in view.counts.items():
        assert f'data-verdict="{label}"><span class="n">{n}</span>' in html
    rows = re.findall(r'<tr data-verdict="([a-z]+)">', html)
    assert len(rows) == len(results.cases)
    assert rows[: view.counts["regressed"]] == ["regressed"] * view.counts["regressed"]
    regressions = html[html.index('<table id="regressions">') : html.index("</table>", html.index("regressions"))]
    assert "+2" in regressions and "10%" in regressions  # deltas and their tolerance


def test_markdown_summary(report, results):
    md = report.markdown.read_text(encoding="utf-8")
    first = md.splitlines()[0]
    assert first.startswith("### :x: FAIL: 5 regressed, 4 failed, 4 ambiguous of 45 cases")
    assert "<script>" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| case | metric | baseline | current | change | tolerance | verdict |")
    for line in table:  # an escaped | never adds a column
        assert line.count("|") - line.count("&#124;") == 8
    assert any("regressed" in line and "**+" in line for line in table)
    assert "Environment: tensorrt 10.13.0" in md
    assert f"Full report: {report.html}" in md or "report.html" in md.splitlines()[-1]


def test_markdown_links_the_ci_run(results, monkeypatch):
    from harness.report.markdown import render_markdown

    for name, value in (
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GITHUB_REPOSITORY", "o/r"),
        ("GITHUB_RUN_ID", "7"),
    ):
        monkeypatch.setenv(name, value)
    md = render_markdown(build_view(results), report_path="reports/report.html")
    assert md.rstrip().endswith(
        "Full report: reports/report.html in the artifacts of [this run](https://github.com/o/r/actions/runs/7)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a|b", "a&#124;b"),
        ("<b>&`x`", "&lt;b&gt;&amp;&#96;x&#96;"),
        ("two\nlines", "two lines"),
        ("[link](javascript:x)", "&#91;link&#93;(javascript:x)"),
    ],
)
def test_markdown_escape(text, expected):
    assert escape(text) == expected


def test_benchmark_json_follows_pytest_benchmark(report, results):
    from pytest_benchmark.stats import Stats

    data = json.loads(report.benchmark_json.read_text())
    assert set(data) == {"machine_info", "commit_info", "benchmarks", "datetime", "version"}
    assert data["commit_info"]["id"] == results.environment["commit"]["id"]
    measured = [c for c in results.cases if c.samples.get("latency_ms")]
    assert len(data["benchmarks"]) == len(measured)
    for bench, case in zip(data["benchmarks"], measured, strict=True):
        assert {"name", "fullname", "params", "group", "stats", "extra_info", "options", "param"} <= set(bench)
        assert bench["name"] == f"test_case[{case.id}]" and case.id in bench["fullname"]
        stats = bench["stats"]
        assert set(Stats.fields) | {"data", "iterations"} <= set(stats)
        seconds = [v / 1e3 for v in case.samples["latency_ms"]]
        assert stats["data"] == pytest.approx(seconds)
        assert stats["median"] == pytest.approx(statistics.median(seconds))
        assert stats["ops"] == pytest.approx(1 / statistics.mean(seconds))
        assert stats["rounds"] == len(seconds) and stats["iterations"] == 1
        assert bench["extra_info"]["throughput_sps"] == pytest.approx(case.metrics["throughput_sps"])


def test_pytest_benchmark_compare_accepts_it(report, tmp_path):
    csv = tmp_path / "compare.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_benchmark", "compare", str(report.benchmark_json), "--csv", str(csv)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Failed to load" not in proc.stdout + proc.stderr
    rows = csv.read_text().splitlines()
    names = json.loads(report.benchmark_json.read_text())["benchmarks"]
    assert len(rows) == 1 + len(names)  # header + one row per benchmark
    assert "test_case[squeezenet-fp32-b1]" in proc.stdout


def test_slug_is_safe_and_unique():
    assert re.fullmatch(r"[a-z0-9-]+", slug(EVIL))
    assert slug("a/b") != slug("a b")
    assert slug("../../etc").startswith("etc-")


def test_labels():
    def case(status, verdict):
        return CaseResult(id="x", params={}, status=status, verdict=verdict)

    assert label_of(case("passed", "unchanged")) == "unchanged"
    assert label_of(case("failed", "regressed")) == "regressed"
    assert label_of(case("failed", "new")) == "failed"  # --strict-baselines
    assert label_of(case("error", None)) == "failed"
    assert label_of(case("skipped", None)) == "skipped"


def test_ambiguous_that_failed_the_run_says_fail():
    """--fail-on-ambiguous: pytest failed the case, so the headline must not say PASS."""
    results = RunResults(environment={}, cases=[CaseResult(id="a", params={}, status="failed", verdict="ambiguous")])
    view = build_view(results)
    assert view.failing and view.headline == "FAIL: 1 ambiguous of 1 case"


def test_sparse_records_still_render(tmp_path):
    """A results file from an older harness or a crashed run: no stats, no samples, no baseline, no params."""
    results = RunResults(
        environment={},
        cases=[
            CaseResult(id="a", params={}, status="error", message="a: model not found"),
            CaseResult(id="b", params={"model": "m"}, metrics={"latency_median_ms": 2.0}, verdict="new"),
        ],
    )
    files = write_reports(results, tmp_path)
    html = files.html.read_text()
    assert "model not found" in html
    assert "FAIL: 1 failed of 2 cases" in html
    assert json.loads(files.benchmark_json.read_text())["benchmarks"] == []
    assert "FAIL: 1 failed of 2 cases" in files.markdown.read_text()


def test_fields_added_by_other_stages_are_shown(tmp_path):
    results = sample_results(6, models=["m"], samples_per_case=50)
    case = next(c for c in results.cases if c.params["precision"] == "fp16" and c.metrics)
    case.accuracy = {"passed": False, "outputs": {"y": {"cosine": 0.91, "max_abs_error": 0.5}}}  # type: ignore[attr-defined]
    case.telemetry = {"status": "ok", "sm_clock_mhz": {"min": 1500.0, "median": 1755.0, "max": 1980.0}}
    case.telemetry["flags"] = ["clock throttling seen by NVML: hw_slowdown"]
    case.recipe = {"recipe": "float16", "size_bytes": 2048, "conversion_time_ms": 12.0, "cache_hit": False}
    results.runs = [{"shard": {"index": 2, "count": 3}, "gate": "failed", "exit_status": 1}]
    html = write_reports(results, tmp_path).html.read_text()
    assert "SM clock during measurement (median per case): 1755–" in html
    assert "clock throttling seen by NVML: hw_slowdown (" in html and "1755 ⚠" in html
    assert 'title="recipe float16, typed model 2 KiB, conversion 12 ms"' in html
    assert "shard 2/3: gate failed (exit 1)" in html
    assert "FAIL · cos 0.9100 · abs 0.5" in html


def test_clock_notes():
    from harness.view.environment import environment_rows

    unavailable = {"status": "unavailable", "reason": "NVML could not start"}
    cpu_run = dict(environment_rows({"uses_gpu": False, "telemetry": unavailable}))
    assert cpu_run["Clocks"] == "no throttling or clock notes recorded"
    gpu = {"index": 0, "name": "H100", "max_sm_clock_mhz": 1980, "power_limit_w": 700.0, "persistence_mode": True}
    gpu_run = dict(environment_rows({"uses_gpu": True, "telemetry": unavailable, "gpus": [gpu]}))
    assert "GPU telemetry unavailable: NVML could not start" in gpu_run["Clocks"]
    assert "max SM 1980 MHz, power limit 700 W, persistence mode on" in gpu_run["Clocks"]


def test_stale_plots_are_removed(tmp_path, small):
    results = small
    stale = tmp_path / "plots" / "gone-model__latency.png"
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    write_reports(results, tmp_path)
    assert not stale.exists()


def test_harness_report_command(tmp_path, small, capsys, monkeypatch):
    results = small
    results.write(tmp_path / "results.json")
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert cli.main(["report", str(tmp_path / "results.json"), "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("FAIL: 2 regressed") and "report.html" in out
    assert (tmp_path / "out" / "report.html").is_file()
    text = summary.read_text()
    assert text.startswith("earlier step\n### :x: FAIL")  # appended, never replaced
    assert cli.main(["report", str(tmp_path), "--no-step-summary"]) == 0  # a folder means its results.json
    assert summary.read_text() == text
    assert (tmp_path / "report.html").is_file()


def test_harness_report_bad_input_is_one_line(tmp_path, capsys):
    (tmp_path / "bad.json").write_text('{"schema": "other"}')
    assert cli.main(["report", str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "harness.results/1" in err
    assert cli.main(["report", str(tmp_path / "missing.json")]) == 2
    assert "no such results file" in capsys.readouterr().err


def test_baseline_option_judges_again(tmp_path, results):
    """--baseline: a faster earlier run makes every measured case regress; the same run makes none."""
    same = tmp_path / "same.json"
    results.write(same)
    files = write_reports(results, tmp_path / "same", baseline=same)
    view_counts = files.markdown.read_text().splitlines()[2]
    assert "0 regressed" in view_counts and "0 improved" in view_counts

    faster = copy.deepcopy(results)
    for case in faster.cases:
        case.metrics = {k: v * (0.5 if k.startswith("latency") else 2.0) for k, v in case.metrics.items()}
        case.trials = {k: [v * (0.5 if k.startswith("latency") else 2.0) for v in vs] for k, vs in case.trials.items()}
    faster.write(tmp_path / "faster.json")
    rebased = write_reports(results, tmp_path / "faster", baseline=tmp_path / "faster.json")
    measured = [c for c in results.cases if c.metrics and c.status not in ("skipped", "error")]
    # with trials on both sides the gate can tell a 2x change from noise; with one trial it can only flag it
    testable = sum(1 for c in measured if len(c.trials.get("latency_median_ms", [])) >= 2)
    assert 0 < testable < len(measured)
    assert rebased.headline.startswith(f"FAIL: {testable} regressed, 4 failed, {len(measured) - testable} ambiguous")
    assert "faster.json" in rebased.html.read_text()
    # the input records are left as they were
    assert build_view(results).counts["regressed"] == 5


def test_baseline_option_refuses_unknown_files(tmp_path, small):
    results = small
    from harness.core.errors import HarnessError

    (tmp_path / "x.json").write_text("[]")
    with pytest.raises(HarnessError, match="neither a results file"):
        write_reports(results, tmp_path, baseline=tmp_path / "x.json")
    with pytest.raises(HarnessError, match="no such file"):
        write_reports(results, tmp_path, baseline=tmp_path / "nope.json")


def test_baseline_directory(tmp_path, small):
    results = small
    key = results.environment["key"]
    folder = tmp_path / "baselines" / key
    folder.mkdir(parents=True)
    cases = {
        c.id: {"metrics": {k: v * 0.5 for k, v in c.metrics.items()}}
        for c in results.cases
        if c.metrics and c.params["model"] == "resnet50"
    }
    (folder / "synthetic.json").write_text(
        json.dumps({"schema": "harness.baseline/1", "suite": "synthetic", "cases": cases})
    )
    cases["resnet50-gone-b1"] = {"params": {"model": "resnet50", "precision": "gone"}, "metrics": {}}
    (folder / "synthetic.json").write_text(
        json.dumps({"schema": "harness.baseline/2", "suite": "synthetic", "cases": cases})
    )
    files = write_reports(results, tmp_path / "out", baseline=tmp_path / "baselines")
    html = files.html.read_text()
    assert '<tr data-verdict="missing">' in html and "in the baseline but not in this run" in html
    missing_row = html[html.index('<tr data-verdict="missing">') :]
    missing_row = missing_row[: missing_row.index("</tr>")]
    assert "resnet50-gone-b1" in missing_row and "<td>gone</td>" in missing_row  # its own baseline entry's params
    assert "1 missing" in files.headline
    assert str(folder) in html
    assert files.headline.startswith("FAIL:")
    resnet_rows = re.findall(r'<tr data-verdict="([a-z]+)">\s*<td><code>resnet50', html)
    # 2x slower than a baseline file without per-trial values: beyond tolerance, but not testable, so ambiguous
    measured = [label for label in resnet_rows if label not in ("skipped", "failed", "missing")]
    assert measured and set(measured) == {"ambiguous"}


def test_results_file_is_read_only_through_records(tmp_path, small):
    """The report never needs a backend: it renders with the backends made unimportable."""
    results = small
    results.write(tmp_path / "results.json")
    code = (
        "import sys; sys.modules['onnxruntime'] = None; sys.modules['tensorrt'] = None; sys.modules['torch'] = None\n"
        "from harness.cli.main import main; raise SystemExit(main(['report', sys.argv[1]]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "results.json")], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "report.html").is_file()
