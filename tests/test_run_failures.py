"""Every failure of one case stays in that case: the next cases run, are recorded and stay interleaved, and the
session ends with its summary table, results.json and reports; the verdict column says what failed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from suite_runner import BENCH_MODULE, run_suite

from harness.core.results import CaseResult, RunResults
from harness.report.terminal import summary_lines
from harness.view.verdicts import outcome, verdict_text

pytest_plugins = ["pytester"]

FAST = ["--warmup-ms", "5", "--min-duration-ms", "30", "--min-iterations", "3", "--trials", "2"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``bad``: reshapes its [batch, 4] input to [3, -1], which ONNX Runtime refuses at run time unless 3 divides
    4 x batch (batch 1 fails, batch 3 runs); ``good``: doubles its input."""
    torch = pytest.importorskip("torch")
    import warnings

    class Bad(torch.nn.Module):
        def forward(self, x: Any) -> Any:
            return x.reshape(3, -1) * 2.0

    class Good(torch.nn.Module):
        def forward(self, x: Any) -> Any:
            return x * 2.0

    folder = tmp_path_factory.mktemp("failing-models")
    for name, module in (("bad", Bad()), ("good", Good())):
        with warnings.catch_warnings():  # the TorchScript exporter's deprecation notices
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                module,
                (torch.rand(3, 4),),
                str(folder / f"{name}.onnx"),
                input_names=["x"],
                output_names=["y"],
                dynamic_axes={"x": {0: "batch"}},
                dynamo=False,
                opset_version=17,
            )
    return folder


def _project(pytester: pytest.Pytester, models: Path) -> Path:
    pytester.makepyfile(test_bench=BENCH_MODULE)
    (pytester.path / "suite.yaml").write_text(
        "suite: demo\nmodels:\n"
        f"  - {{name: bad, path: {models / 'bad.onnx'}}}\n"
        f"  - {{name: good, path: {models / 'good.onnx'}}}\n"
        "precisions: [fp32]\nbatch_sizes: [1, 3]\nbackends:\n  onnxruntime: {intra_op_threads: 1}\n"
    )
    return pytester.path


def _results(root: Path) -> dict[str, dict[str, Any]]:
    data = json.loads((root / "reports" / "results.json").read_text())
    return {c["id"]: c for c in data["cases"]}


def _row(output: str, case_id: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(case_id + " "))


def test_a_case_failing_in_the_interleaved_pass_is_dropped_and_the_others_stay_interleaved(pytester, models):
    root = _project(pytester, models)
    outcome_ = run_suite(pytester, *FAST)
    text = outcome_.stdout.str()
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if line.startswith("harness interleave: ")]
    # The failure is named where it happened (while building: in the pass's own line; while measuring: a line of
    # its own), and the pass that counts is the one of the three others.
    dropped = [line for line in lines if "dropped" in line and "bad-fp32-b1" in line]
    assert dropped and "onnxruntime" in dropped[0], lines
    assert "bad-fp32-b1: bad-fp32-b1" not in dropped[0], "the case is named once"
    assert "interleaved" in lines[0] and "demo:" in lines[0]

    cases = _results(root)
    assert set(cases) == {"bad-fp32-b1", "bad-fp32-b3", "good-fp32-b1", "good-fp32-b3"}
    bad = cases["bad-fp32-b1"]
    assert bad["status"] == "error" and bad["message"].startswith("bad-fp32-b1: ")
    assert "Reshape" in bad["message"]
    for case_id in ("bad-fp32-b3", "good-fp32-b1", "good-fp32-b3"):
        assert cases[case_id]["status"] == "passed" and cases[case_id]["metrics"]["throughput_sps"] > 0
        assert cases[case_id]["measure"]["interleaved_cases"] == 3, "still interleaved with each other"
    outcome_.assert_outcomes(passed=3, failed=1)
    assert _row(text, "bad-fp32-b1").rstrip().endswith("error")
    assert "verdicts: 1 error, 3 new" in text
    for name in ("report.html", "summary.md", "benchmark.json"):
        assert (root / "reports" / name).is_file()
    assert "bad-fp32-b1 (error)" in (root / "reports" / "summary.md").read_text()


GATE_FAILS = """
import pytest

from harness.run.session import HarnessSession


@pytest.fixture(autouse=True)
def gate_fails_for_batch_1(monkeypatch):
    original = HarnessSession.gate_case

    def gate(self, case, env, result):
        if case.id.endswith("-b1"):
            raise RuntimeError("the gate broke")
        return original(self, case, env, result)

    monkeypatch.setattr(HarnessSession, "gate_case", gate)
"""


def test_an_internal_error_in_one_case_is_that_cases_error_with_its_traceback_in_a_log(pytester, models):
    root = _project(pytester, models)
    pytester.makeconftest(GATE_FAILS)
    outcome_ = run_suite(pytester, *FAST, "--no-interleave", "-k", "good")
    text = outcome_.stdout.str()
    assert "Traceback" not in text
    cases = _results(root)
    failed = cases["good-fp32-b1"]
    assert failed["status"] == "error"
    assert failed["message"].startswith("good-fp32-b1: RuntimeError: the gate broke (traceback in ")
    log = Path(failed["message"].rsplit("(traceback in ", 1)[1].rstrip(")"))
    assert log.is_file() and "RuntimeError: the gate broke" in log.read_text()
    assert "in gate" in log.read_text(), "the traceback reaches the frame that raised"
    assert failed["metrics"]["throughput_sps"] > 0, "what was measured before the failure is kept"
    assert cases["good-fp32-b3"]["status"] == "passed" and cases["good-fp32-b3"]["verdict"] == "new"
    outcome_.assert_outcomes(passed=1, failed=1)
    assert _row(text, "good-fp32-b1").rstrip().endswith("error")
    assert (root / "reports" / "report.html").is_file()


def _case(status: str = "passed", verdict: str | None = "unchanged", **fields: Any) -> CaseResult:
    return CaseResult(
        id="m-fp16-b1", params={"model": "m", "precision": "fp16"}, status=status, verdict=verdict, **fields
    )


def _comparison(metric: str, change: float, verdict: str, **extra: Any) -> dict[str, Any]:
    return {"metric": metric, "current": 1 + change, "baseline": 1.0, "change": change, "tolerance": 0.1,
            "verdict": verdict, "method": "mann-whitney", "p_value": 0.01, **extra}  # fmt: skip


def test_the_verdict_column_says_what_failed_and_which_metric_decided():
    accuracy = {"failures": ["m-fp16-b1: output 'y': cosine similarity 0.9 < 0.995"], "outputs": {"y": {}}}
    assert verdict_text(_case("failed", "new", accuracy=accuracy)) == "accuracy", "never 'new'"
    introduced = {"failures": ["..."], "outputs": {"y": {"nonfinite": 3}}}
    assert verdict_text(_case("failed", "regressed", accuracy=introduced)) == "accuracy (NaN/inf, regressed)"
    assert verdict_text(_case("error", None)) == "error"
    assert verdict_text(_case("skipped", None)) == "skipped"
    assert verdict_text(_case("failed", "new")) == "failed (no baseline; --strict-baselines)"
    empty = {"y": {"elements": 4, "nan": 4, "posinf": 0, "neginf": 0}}
    assert verdict_text(_case("failed", "new", reference_nonfinite=empty)) == "nonfinite"
    partly = {"y": {"elements": 4, "nan": 1, "posinf": 0, "neginf": 0}}
    assert verdict_text(_case("passed", "new", reference_nonfinite=partly)) == "new, nonfinite"

    slower = [_comparison("latency_median_ms", 0.18, "regressed"), _comparison("throughput_sps", -0.15, "regressed")]
    assert verdict_text(_case("failed", "regressed", comparisons=slower)) == (
        "regressed (latency p50 +18.0%, throughput -15.0%)"
    )
    contended = "runner contended: CPU share 40% vs 60%, other processes 1.0 vs 0.0 cores; judged on CPU time"
    moved = [
        _comparison("latency_median_ms", 0.01, "unchanged"),
        _comparison("throughput_sps", 0.14, "unchanged", note=contended),
    ]
    assert verdict_text(_case(comparisons=moved)) == (
        "unchanged (latency p50 decided; throughput +14.0%: judged on CPU time)"
    )
    assert verdict_text(_case(comparisons=moved[:1])) == "unchanged", "nothing moved: one word"
    unsure = [
        _comparison("latency_median_ms", 0.12, "ambiguous", p_value=0.21),
        _comparison("throughput_sps", -0.02, "unchanged"),
    ]
    assert verdict_text(_case("passed", "ambiguous", comparisons=unsure)) == (
        "ambiguous (latency p50 +12.0%: not significant, p=0.210)"
    )
    few = [_comparison("latency_median_ms", 0.3, "ambiguous", p_value=None)]
    assert (
        verdict_text(_case("passed", "ambiguous", comparisons=few)) == "ambiguous (latency p50 +30.0%: too few trials)"
    )


def test_the_summary_counts_what_failed():
    accuracy = {"failures": ["x"], "outputs": {}}
    cases = [
        CaseResult(id="a", params={}, status="failed", verdict="new", accuracy=accuracy),
        CaseResult(id="b", params={}, status="error"),
        CaseResult(id="c", params={}, status="passed", verdict="new"),
    ]
    lines = summary_lines(RunResults(environment={}, cases=cases))
    assert "verdicts: 1 accuracy, 1 error, 1 new" in lines
    assert [outcome(c) for c in cases] == ["accuracy", "error", "new"]
