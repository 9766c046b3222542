"""--metrics-file: the run as OpenMetrics text, read back with prometheus_client's parsers of both formats (OpenMetrics
1.0 and the Prometheus text format node_exporter's textfile collector reads), and the Grafana dashboard's queries."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus
from report_sample import sample_results
from suite_runner import BENCH_MODULE, cases, run_suite

from harness.cli.main import main
from harness.core.errors import OutputError
from harness.core.results import CaseResult, RunResults
from harness.report.openmetrics import CASE_LABELS, family_names, render_openmetrics, write_metrics_file
from tests.postgres import postgres_server, postgres_url  # noqa: F401 (fixtures)

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "docs" / "grafana" / "harness-dashboard.json"


def families(text: str) -> dict[str, Any]:
    """The families of an OpenMetrics text by name; the Prometheus-format parser must read the same samples."""
    parsed = {f.name: f for f in parse_openmetrics(text)}
    old = {f.name: f for f in parse_prometheus(text)}
    assert sorted(parsed) == sorted(old)
    for name, family in parsed.items():
        assert [s.labels for s in old[name].samples] == [s.labels for s in family.samples], name
    return parsed


def one(family: Any, **labels: str) -> float:
    found = [s.value for s in family.samples if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (family.name, labels, found)
    return float(found[0])


def test_every_measured_metric_is_written_in_base_units_with_the_case_labels():
    results = sample_results(n_cases=12)
    text = render_openmetrics(results)
    assert text.endswith("# EOF\n")
    parsed = families(text)
    case = next(c for c in results.cases if c.metrics)
    labels = {"case": case.id}
    latency = parsed["harness_latency_median_seconds"]
    assert latency.type == "gauge" and latency.unit == "seconds"
    assert one(latency, **labels) == pytest.approx(case.metrics["latency_median_ms"] / 1e3, rel=1e-12)
    assert one(parsed["harness_latency_p99_seconds"], **labels) == pytest.approx(case.metrics["latency_p99_ms"] / 1e3)
    throughput = parsed["harness_throughput_samples_per_second"]
    assert throughput.unit == "samples_per_second"
    assert one(throughput, **labels) == pytest.approx(case.metrics["throughput_sps"])
    sample = next(s for s in latency.samples if s.labels["case"] == case.id)
    assert tuple(sample.labels) == CASE_LABELS
    assert sample.labels == {
        "suite": "synthetic",
        "case": case.id,
        "model": case.params["model"],
        "precision": case.params["precision"],
        "batch": str(case.params["batch_size"]),
        "backend": "tensorrt",
        "gpu": "NVIDIA H100 80GB HBM3",
    }
    # the skipped and errored cases measured nothing: no latency series, but a verdict
    unmeasured = {c.id for c in results.cases if not c.metrics}
    assert unmeasured and not unmeasured & {s.labels["case"] for s in latency.samples}
    assert unmeasured <= {s.labels["case"] for s in parsed["harness_case_regressed"].samples}
    # no client-side timestamps: node_exporter's textfile collector skips a whole file that has one
    assert all(s.timestamp is None for f in parsed.values() for s in f.samples)
    assert list(parsed) == family_names()  # every family, in the order family_names() gives


def test_commit_and_versions_are_labels_of_one_info_metric_only():
    results = sample_results(n_cases=6)
    results.environment["commit"]["id"] = "abc1234"
    parsed = families(render_openmetrics(results))
    (info,) = parsed["harness_run_info"].samples
    assert info.value == 1
    assert info.labels | {} == {
        "commit": "abc1234",
        "branch": "main",
        "dirty": "false",
        "key": "gpu-h100-80gb-hbm3__tensorrt-10.13.0",
        "harness_version": "0.1.0",
        "backend": "tensorrt",
        "backend_version": "10.13.0",
        "tensorrt": "10.13.0",
        "driver": "580.65.06",
        "cuda": "13.0",
        "gpu": "NVIDIA H100 80GB HBM3",
    }
    for name, family in parsed.items():
        if name != "harness_run_info":
            assert not any("commit" in s.labels or "driver" in s.labels for s in family.samples), name
    # the run's time is a value, 2026-01-01T00:00:00+00:00 in seconds since the epoch
    assert one(parsed["harness_run_timestamp_seconds"]) == 1767225600
    assert parsed["harness_run_timestamp_seconds"].unit == "seconds"


def test_cpu_runs_name_no_gpu_and_no_tensorrt():
    results = sample_results(n_cases=3)
    results.environment |= {"uses_gpu": False, "gpus": [], "backend": {"name": "onnxruntime", "version": "1.23.2"}}
    parsed = families(render_openmetrics(results))
    (info,) = parsed["harness_run_info"].samples
    assert info.labels["tensorrt"] == "" and info.labels["gpu"] == "" and info.labels["driver"] == ""
    assert info.labels["backend_version"] == "1.23.2"
    assert {s.labels["gpu"] for s in parsed["harness_case_regressed"].samples} == {""}


def test_verdicts_are_gauges_per_case_and_counts_per_run():
    results = sample_results(n_cases=12)
    parsed = families(render_openmetrics(results))
    regressed = next(c for c in results.cases if c.verdict == "regressed")
    unchanged = next(c for c in results.cases if c.verdict == "unchanged")
    assert one(parsed["harness_case_regressed"], case=regressed.id) == 1
    assert one(parsed["harness_case_regressed"], case=unchanged.id) == 0
    verdicts = parsed["harness_case_verdict"]
    assert one(verdicts, case=regressed.id, verdict="regressed") == 1
    assert one(verdicts, case=regressed.id, verdict="unchanged") == 0
    assert sum(s.value for s in verdicts.samples if s.labels["case"] == unchanged.id) == 1
    assert one(parsed["harness_run_failing"]) == 1
    counts = {s.labels["verdict"]: s.value for s in parsed["harness_run_cases"].samples}
    assert counts["regressed"] == sum(c.verdict == "regressed" for c in results.cases) >= 1
    assert sum(counts.values()) == len(results.cases)
    # the gate's relative change of each compared metric, named by the metric's family
    comparison = next(c for c in regressed.comparisons if c["metric"] == "latency_median_ms")
    change = one(parsed["harness_case_change_ratio"], case=regressed.id, metric="harness_latency_median_seconds")
    assert change == pytest.approx(comparison["change"]) and change > 0.1


def test_nan_is_written_as_nan_and_label_values_are_escaped():
    odd = 'a "quoted" \\ back\nslash'
    case = CaseResult(
        id="odd-case",
        params={"suite": "s", "model": odd, "precision": "fp32", "batch_size": 1},
        metrics={"latency_median_ms": math.nan, "throughput_sps": math.inf},
        verdict="unchanged",
    )
    results = RunResults(environment={"backend": {"name": "onnxruntime", "version": "1"}}, cases=[case])
    text = render_openmetrics(results)
    assert 'model="a \\"quoted\\" \\\\ back\\nslash"' in text
    parsed = families(text)
    assert math.isnan(one(parsed["harness_latency_median_seconds"], case="odd-case"))
    assert one(parsed["harness_throughput_samples_per_second"], model=odd) == math.inf
    assert "harness_build_time_seconds" not in parsed  # not measured: left out, not NaN
    assert "harness_run_timestamp_seconds" not in parsed  # no date recorded: no made-up time


def test_the_file_is_written_atomically_and_a_bad_path_is_one_line(tmp_path):
    results = sample_results(n_cases=3)
    target = tmp_path / "textfile" / "harness.prom"
    assert write_metrics_file(results, target) == target
    assert target.read_text(encoding="utf-8") == render_openmetrics(results)
    assert [p.name for p in target.parent.iterdir()] == ["harness.prom"]  # no temporary file left behind
    with pytest.raises(OutputError, match=r"--metrics-file .*textfile: is a folder; give a file name such as"):
        write_metrics_file(results, target.parent)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputError, match=r"--metrics-file .*file/m\.prom: .*file is a file, not a folder") as info:
        write_metrics_file(results, blocker / "m.prom")
    assert "\n" not in str(info.value)


def test_harness_report_and_merge_write_the_metrics_file(tmp_path, capsys):
    results_path = tmp_path / "run" / "results.json"
    sample_results(n_cases=6).write(results_path)
    target = tmp_path / "metrics" / "harness.prom"
    assert main(["report", str(results_path), "--no-step-summary", "--metrics-file", str(target)]) == 0
    assert f"{target} (OpenMetrics text)" in capsys.readouterr().out
    assert "harness_latency_median_seconds" in families(target.read_text(encoding="utf-8"))

    merged = tmp_path / "merged.prom"
    status = main(["merge", str(results_path), "--report-dir", str(tmp_path / "m"), "--no-report", "--no-gate",
                   "--metrics-file", str(merged)])  # fmt: skip
    assert status == 0
    assert f"metrics of 6 case(s) -> {merged}" in capsys.readouterr().out
    assert families(merged.read_text(encoding="utf-8")).keys() == families(target.read_text(encoding="utf-8")).keys()


@pytest.mark.parametrize("command", ["report", "merge"])
def test_an_unwritable_metrics_file_is_one_line_and_exit_2_before_any_work(tmp_path, capsys, command):
    results_path = tmp_path / "results.json"
    sample_results(n_cases=3).write(results_path)
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    args = [str(results_path), "--metrics-file", str(blocker / "harness.prom")]
    args += ["--no-step-summary"] if command == "report" else ["--report-dir", str(tmp_path / "out")]
    assert main([command, *args]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(rf"harness {command}: error: --metrics-file .*: .* is a file, not a folder; .*\n", err), err
    # refused before anything was written (the folder checks may have created an empty --report-dir)
    assert not list(tmp_path.glob("out/*")) and not (tmp_path / "report.html").exists()


SUITE = """suite: demo
models:
  - name: squeezenet
    onnx_zoo: light_squeezenet
precisions: [fp32]
batch_sizes: [1]
measure: {warmup_ms: 10, min_duration_ms: 30, min_iterations: 5, trials: 2}
"""


def test_a_pytest_run_writes_the_metrics_file_even_without_reports(pytester):
    pytester.makepyfile(test_bench=BENCH_MODULE)
    (pytester.path / "suite.yaml").write_text(SUITE)
    target = pytester.path / "textfile" / "harness.prom"
    outcome = run_suite(pytester, "--no-reports", "--metrics-file", str(target))
    outcome.assert_outcomes(passed=1)
    assert f"metrics: {target} (OpenMetrics text)" in outcome.stdout.str()
    parsed = families(target.read_text(encoding="utf-8"))
    latency = one(parsed["harness_latency_median_seconds"], case="squeezenet-fp32-b1", backend="onnxruntime")
    assert 0 < latency < 10
    (info,) = parsed["harness_run_info"].samples
    assert info.labels["backend"] == "onnxruntime" and info.labels["key"]
    assert not (pytester.path / "reports" / "report.html").exists()


def test_a_pytest_run_refuses_an_unwritable_metrics_file_before_measuring(pytester):
    pytester.makepyfile(test_bench=BENCH_MODULE)
    (pytester.path / "suite.yaml").write_text(SUITE)
    (pytester.path / "blocker").write_text("")
    outcome = run_suite(pytester, "--metrics-file", str(pytester.path / "blocker" / "harness.prom"))
    assert outcome.ret == pytest.ExitCode.USAGE_ERROR
    assert re.search(r"--metrics-file .*blocker/harness\.prom: .*blocker is a file, not a folder", outcome.stderr.str())
    assert cases(pytester.path) == {}  # nothing measured (the session still records its exit status)


# -- the Grafana dashboard (docs/grafana) ----------------------------------------------------------------------------
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def panel_queries(data: dict[str, Any]) -> list[str]:
    panels = [p for top in data["panels"] for p in [top, *top.get("panels", [])]]
    return [t["expr"] for p in panels for t in p.get("targets", []) if "expr" in t]


def test_the_dashboard_queries_only_families_the_metrics_file_writes():
    data = dashboard()
    assert data["schemaVersion"] >= 39 and data["uid"]
    queries = panel_queries(data)
    written = set(family_names())
    named = {name for query in queries for name in re.findall(r"\bharness_[a-z0-9_]+\b", query)}
    assert named and named <= written, named - written
    assert {"harness_latency_median_seconds", "harness_throughput_samples_per_second"} <= named
    assert all('case=~"$case"' in q for q in queries if "harness_run_" not in q)
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert {"suite", "case", "backend"} <= set(variables)
    for name in ("suite", "case", "backend"):
        assert re.search(rf"label_values\(harness_[a-z_]+(\{{.*\}})?, *{name}\)", str(variables[name]["query"]))


def test_the_dashboard_marks_change_points_from_the_history_store():
    annotations = [a for a in dashboard()["annotations"]["list"] if a.get("datasource", {}).get("type") != "grafana"]
    (changes,) = [a for a in annotations if "change" in a["name"].lower()]
    assert changes["datasource"]["type"] == "grafana-postgresql-datasource"
    sql = changes["target"]["rawSql"]
    assert "$__timeFilter(" in sql and re.search(r"\bAS time\b", sql) and re.search(r"\bAS text\b", sql)


def grafana_sql(sql: str, **variables: list[str]) -> str:
    """``sql`` with the macros Grafana's PostgreSQL data source expands: ``$__timeFilter(x)`` (the dashboard's
    range, here all time) and ``${name:sqlstring}`` (the variable's values, quoted and comma-separated)."""
    sql = re.sub(
        r"\$__timeFilter\(([^()]*(?:\([^()]*\))?[^()]*)\)",
        r"\1 BETWEEN '1970-01-01T00:00:00Z' AND '2100-01-01T00:00:00Z'",
        sql,
    )
    for name, values in variables.items():
        sql = sql.replace(f"${{{name}:sqlstring}}", ",".join("'" + v.replace("'", "''") + "'" for v in values))
    assert "$" not in sql, sql
    return sql


def annotation_sql(name: str) -> str:
    return next(a for a in dashboard()["annotations"]["list"] if a["name"] == name)["target"]["rawSql"]


def test_the_regression_annotations_query_a_real_postgresql_store(postgres_url):  # noqa: F811 (fixture)
    import sqlalchemy as sa

    from harness.history.store import HistoryStore, normalize_url, run_info

    results = sample_results(n_cases=12)
    regressed = sorted(c.id for c in results.cases if c.verdict == "regressed")
    with HistoryStore(postgres_url) as store:
        store.append(results, run_info(results, "import"))
    sql = grafana_sql(annotation_sql("Regressions (gate)"), suite=["synthetic"], case=[c.id for c in results.cases])
    engine = sa.create_engine(normalize_url(postgres_url))
    with engine.connect() as conn:
        rows = conn.execute(sa.text(sql)).mappings().all()
        none = conn.execute(sa.text(grafana_sql(annotation_sql("Regressions (gate)"), suite=["synthetic"], case=["x"])))
        assert none.all() == []
    engine.dispose()
    assert sorted(r["text"].split(":")[0] for r in rows) == regressed
    row = rows[0]
    assert row["time"].isoformat() == "2026-01-01T00:00:00+00:00"
    assert row["text"].endswith("regressed at 01234567 (main)") and row["tags"].startswith("regressed,synthetic,")


def test_the_change_point_annotations_name_the_stores_change_point_table():
    from harness.history.schema import change_points

    used = set(re.findall(r"\bcp\.\"?([a-z_]+)\"?", annotation_sql("Change points")))
    assert {"time", "change", "p_value", "suite", "case_id"} <= used
    assert used <= set(change_points.columns.keys()), used - set(change_points.columns.keys())


def test_the_change_point_annotations_show_what_detect_stored_in_a_real_postgresql_store(
    postgres_url,  # noqa: F811 (fixture)
    capsys,
):
    import sqlalchemy as sa

    from harness.history.store import HistoryStore, normalize_url, run_info
    from tests.test_history_store import synthetic_run

    runs = [synthetic_run(i, step_at=15, step=0.08) for i in range(30)]
    with HistoryStore(postgres_url) as store:
        for results in runs:
            store.append(results, run_info(results, "import"))
    args = ["history", "detect", "--history", postgres_url, "--case", "resnet50-fp32-b1", "--metric", "latency"]
    assert main(args) == 0
    printed = capsys.readouterr().out.splitlines()[0]
    assert f"at run {run_info(runs[15], 'import').run_id} " in printed
    sql = annotation_sql("Change points")
    engine = sa.create_engine(normalize_url(postgres_url))
    with engine.connect() as conn:
        (row,) = conn.execute(sa.text(grafana_sql(sql, suite=["zoo-cpu"], case=["resnet50-fp32-b1"]))).mappings()
        assert conn.execute(sa.text(grafana_sql(sql, suite=["zoo-cpu"], case=["squeezenet-fp32-b1"]))).all() == []
    engine.dispose()
    assert row["time"].isoformat() == "2026-01-01T15:00:00+00:00"  # the first run at the new level
    assert row["tags"] == "change point,zoo-cpu,resnet50-fp32-b1,latency_median_ms"
    text = re.fullmatch(
        r"resnet50-fp32-b1 latency_median_ms ([+-]\d+\.\d)% between 00000000\.\.00000000 \(p=(.+)\)", row["text"]
    )
    assert text is not None, row["text"]
    assert f"{text[1]}%" in printed and 6.0 <= float(text[1]) <= 10.0  # the size detect printed
    assert float(text[2]) < 1e-4
