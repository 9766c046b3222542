"""The terminal summary read at a glance: 3 significant digits at any size, speed-probe corrections marked with a
footnote, CV warnings counted, the failed accuracy criterion named; and the same numbers in the other reports."""

from __future__ import annotations

import pytest

from harness.core.metrics import format_ms, format_value
from harness.core.results import CaseResult, RunResults
from harness.report.markdown import render_markdown
from harness.report.terminal import summary_lines
from harness.view.report_view import build_view
from harness.view.verdicts import verdict_text

ENV = {"backend": {"name": "onnxruntime", "version": "1.2"}, "cpu": {"model": "cpu"}, "key": "k"}
PROBE_NOTE = "at the baseline's runner speed: the runner ran 4.1% slower (speed probe); measured 1.30 ms"
CV = "latency CV 3.1% exceeds 2.5%: the machine is noisy or the case too short; results may be unstable"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0123456, "0.0123"),
        (1.23456, "1.23"),
        (12.345, "12.3"),
        (123.45, "123"),
        (1234.5, "1230"),
        (99.96, "100"),
        (1.2, "1.20"),
        (None, "-"),
        (float("nan"), "NaN"),
        (float("inf"), "inf"),
    ],
)
def test_three_significant_digits_at_any_size(value, text):
    assert format_ms(value) == text
    if value is not None:
        assert format_value("latency_median_ms", value) == f"{text} ms"


def _case(case_id: str, p50: float, **fields) -> CaseResult:
    metrics = {"latency_median_ms": p50, "latency_p99_ms": p50 * 1.1, "throughput_sps": 1e3 / p50}
    params = {"model": case_id.split("-")[0], "precision": "fp32", "batch_size": 1}
    return CaseResult(id=case_id, params=params, metrics=metrics, **{"status": "passed", **fields})


def _comparison(metric: str, current: float, baseline: float, verdict: str = "unchanged", note: str = "") -> dict:
    change = current / baseline - 1
    return {
        "metric": metric,
        "current": current,
        "baseline": baseline,
        "change": change,
        "tolerance": 0.1,
        "verdict": verdict,
        "method": "mann-whitney",
        "p_value": 0.2,
        "trials": [5, 5],
        "note": note,
    }


def _results() -> RunResults:
    probed = _case(
        "probed-fp32-b1",
        1.3,
        verdict="unchanged",
        comparisons=[_comparison("latency_median_ms", 1.25, 1.2, note=PROBE_NOTE)],
    )
    slow = _case("slow-fp32-b1", 1234.5, verdict="unchanged", warnings=[CV])
    moved = _case(
        "moved-fp32-b1",
        0.0123456,
        verdict="unchanged",
        warnings=[CV],
        comparisons=[
            _comparison("latency_median_ms", 0.0124, 0.0123),
            _comparison("throughput_sps", 1140.0, 1000.0, note="runner contended: CPU time per inference did not move"),
        ],
    )
    bad = _case(
        "bad-int8-b1",
        2.0,
        status="failed",
        verdict="new",
        message="bad-int8-b1: output 'y': cosine ...",
        accuracy={
            "passed": False,
            "failures": [
                "bad-int8-b1: output 'y': cosine similarity 0.041 < 0.9 "
                "(min_cosine); max abs error 0.5 on values up to 1"
            ],
            "failed_criteria": [
                {
                    "output": "y",
                    "criterion": "min_cosine",
                    "value": 0.041,
                    "limit": 0.9,
                    "brief": "min_cosine 0.041 < 0.9",
                    "line": "...",
                }
            ],
            "outputs": {"y": {"cosine_similarity": 0.041}},
        },
    )
    return RunResults(environment=ENV, cases=[probed, slow, moved, bad])


def test_summary_marks_probe_corrections_counts_cv_warnings_and_names_the_accuracy_criterion():
    lines = summary_lines(_results())
    text = "\n".join(lines)
    row = {line.split()[0]: line for line in lines[3:7]}
    assert row["probed-fp32-b1"].split()[1] == "*", "the corrected case is marked"
    assert "1.30" in row["probed-fp32-b1"] and "1.20" in row["probed-fp32-b1"]  # current p50 and the compared base
    assert "*" not in row["slow-fp32-b1"].split()[1] and " 1230 " in row["slow-fp32-b1"]
    assert " 0.0123 " in row["moved-fp32-b1"]
    assert row["bad-int8-b1"].rstrip().endswith("accuracy (min_cosine 0.041 < 0.9)")
    assert "verdicts: 1 accuracy, 3 unchanged; 2 CV warnings" in lines
    assert "* compared at the baseline's runner speed (speed probe): probed-fp32-b1 (runner 4.1% slower)" in lines
    assert "Traceback" not in text


def test_one_current_value_and_non_deciding_deltas_explained_in_every_report():
    results = _results()
    view = build_view(results)
    probed = next(c for c in view.cases if c.id == "probed-fp32-b1")
    (delta,) = probed.deltas
    # the current value is the measured p50 the tables show, the gate's own (probe-scaled) value is evidence
    assert delta.current_text == "1.30 ms" and delta.compared == 1.25
    assert "compared as 1.25 ms" in delta.evidence
    moved = next(c for c in view.cases if c.id == "moved-fp32-b1")
    assert moved.delta("throughput_sps").not_deciding == (
        "throughput +14.0% beyond 10%: not deciding; judged on CPU time"
    )
    assert moved.delta("latency_median_ms").not_deciding == ""  # within tolerance
    assert verdict_text(moved.case) == "unchanged (latency p50 decided; throughput +14.0%: judged on CPU time)"
    markdown = render_markdown(view)
    assert "**Beyond tolerance, not deciding (1):**" in markdown
    assert "- moved-fp32-b1: throughput +14.0% beyond 10%: not deciding; judged on CPU time" in markdown


def test_accuracy_cell_names_the_failed_criterion(tmp_path):
    from harness.report import write_reports

    view = build_view(_results())
    bad = next(c for c in view.cases if c.id == "bad-int8-b1")
    assert bad.accuracy.startswith("FAIL: min_cosine 0.041 < 0.9") and bad.accuracy_failed
    html = write_reports(_results(), tmp_path).html.read_text(encoding="utf-8")
    assert "accuracy: min_cosine 0.041 &lt; 0.9" in html  # the failures table
    assert 'id="undecided"' in html and "throughput +14.0% beyond 10%: not deciding" in html
    assert 'id="probed"' in html and "runner 4.1% slower" in html
