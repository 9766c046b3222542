"""Reports at the end of a real pytest session: report dir, $GITHUB_STEP_SUMMARY, JUnit XML, pytest-benchmark."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from suite_runner import BENCH_MODULE, run_suite

pytest_plugins = ["pytester"]

EVIL = "<script>alert(1)</script>"
SUITE = f"""suite: demo
models:
  - name: squeezenet
    onnx_zoo: light_squeezenet
  - name: "{EVIL}"
    onnx_zoo: light_squeezenet
precisions: [fp32]
batch_sizes: [1]
tolerance: 50%  # wide: the other case must come out unchanged on any runner; the slowdown below is +200%
measure: {{warmup_ms: 20, min_duration_ms: 60, min_iterations: 5, trials: 4}}
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    pytester.makepyfile(test_bench=BENCH_MODULE)
    (pytester.path / "suite.yaml").write_text(SUITE)
    return pytester.path


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return run_suite(pytester, *args)


def test_session_writes_reports_summary_and_junit(pytester, project, monkeypatch):
    run(pytester, "--update-baselines").assert_outcomes(passed=2)
    reports = project / "reports"
    first = (reports / "report.html").read_text(encoding="utf-8")
    assert "PASS" in first

    step_summary = project / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    outcome = run(
        pytester,
        "--simulate-slowdown",
        "3",
        "--slowdown-cases",
        "squeezenet-fp32-b1",
        "--junitxml",
        str(project / "junit.xml"),
    )
    outcome.assert_outcomes(passed=1, failed=1)
    assert re.search(r"report: .*report\.html", outcome.stdout.str())

    # the report directory, next to results.json
    html = (reports / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"https?:", html)
    assert EVIL not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "FAIL: 1 regressed of 2 cases" in html
    assert len(list((reports / "plots").glob("*.png"))) >= 3
    summary = (reports / "summary.md").read_text(encoding="utf-8")
    assert summary.startswith("### :x: FAIL: 1 regressed of 2 cases")
    assert "squeezenet-fp32-b1 | median latency" in summary

    # appended to GitHub's step summary
    assert step_summary.read_text(encoding="utf-8") == summary

    # pytest-benchmark reads our benchmark.json
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_benchmark", "compare", str(reports / "benchmark.json")],
        capture_output=True,
        text=True,
        cwd=project,
        timeout=120,
    )
    assert proc.returncode == 0 and "Failed to load" not in proc.stdout + proc.stderr
    assert "test_case[squeezenet-fp32-b1]" in proc.stdout
    names = {b["name"] for b in json.loads((reports / "benchmark.json").read_text())["benchmarks"]}
    assert names == {"test_case[squeezenet-fp32-b1]", f"test_case[{EVIL}-fp32-b1]"}

    # JUnit XML: the failure says what regressed, one line per problem, no traceback
    tree = ET.parse(project / "junit.xml")
    failures = [(tc.get("name"), tc.find("failure")) for tc in tree.iter("testcase") if tc.find("failure") is not None]
    assert [name for name, _ in failures] == ["test_case[squeezenet-fp32-b1]"]
    failure = failures[0][1]
    text = (failure.get("message") or "") + (failure.text or "")
    assert "squeezenet-fp32-b1: median latency" in text and "tolerance 50%" in text
    assert "Traceback" not in text and "def test_case" not in text and "harness_check" not in text


def test_no_reports_option(pytester, project):
    run(pytester, "--no-reports").assert_outcomes(passed=2)
    assert (project / "reports" / "results.json").is_file()
    assert not (project / "reports" / "report.html").exists()
