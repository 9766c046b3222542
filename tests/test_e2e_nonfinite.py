"""Non-finite numbers: NaN and infinities never break a write, and non-finite outputs are findings of their case.

End to end through pytest on models exported from PyTorch that compute NaN (log of a negative value), infinities
(exp overflow), values that are finite at fp32 but overflow at fp16, and nothing but NaN; then a results file and a
baseline file holding NaN. Every file the run writes must parse as strict JSON (no NaN / Infinity tokens).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from suite_runner import BENCH_MODULE, run_suite

from harness.core.fsio import dumps_json, loads_json, read_json, write_json
from harness.core.results import CaseResult, RunResults
from harness.judge.gate import judge

pytest_plugins = ["pytester"]

FAST = ["--warmup-ms", "5", "--min-duration-ms", "30", "--min-iterations", "3", "--trials", "2"]
WIDTH = 16  # features per sample: outputs of [batch, 16]


def strict(text: str) -> Any:
    """json.loads that refuses the NaN / Infinity tokens, as a browser's JSON.parse or jq would."""

    def refuse(token: str) -> Any:
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def _export(module: Any, path: Path) -> None:
    import warnings

    import torch

    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notices
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            (torch.rand(2, WIDTH),),
            str(path),
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
            dynamo=False,
            opset_version=17,
        )


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ONNX files of four small PyTorch modules (inputs: floats in 0..1, the harness's default)."""
    torch = pytest.importorskip("torch")

    class Lambda(torch.nn.Module):
        def __init__(self, fn: Any) -> None:
            super().__init__()
            self.fn = fn

        def forward(self, x: Any) -> Any:
            return self.fn(x)

    folder = tmp_path_factory.mktemp("nonfinite-models")
    modules = {
        "lognan": lambda x: torch.log(x - 0.5),  # NaN wherever x < 0.5
        "expinf": lambda x: torch.exp(x * 1000.0),  # +inf wherever x > 0.09
        "fp16over": lambda x: torch.exp(x * 20.0),  # at most e^20 = 4.9e8: finite in fp32, inf in fp16 above x = 0.55
        "allnan": lambda x: torch.sqrt(-1.0 - x * x),  # NaN everywhere
    }
    for name, fn in modules.items():
        _export(Lambda(fn), folder / f"{name}.onnx")
    return folder


def _project(pytester: pytest.Pytester, models: Path, names: list[str], precisions: str) -> Path:
    pytester.makepyfile(test_bench=BENCH_MODULE)
    entries = "".join(f"  - {{name: {n}, path: {models / (n + '.onnx')}}}\n" for n in names)
    (pytester.path / "suite.yaml").write_text(
        f"suite: nf\nmodels:\n{entries}precisions: {precisions}\nbatch_sizes: [2]\n"
        "backends:\n  onnxruntime: {intra_op_threads: 1}\n"
    )
    return pytester.path


def _cases(root: Path) -> dict[str, dict[str, Any]]:
    data = strict((root / "reports" / "results.json").read_text())
    return {c["id"]: c for c in data["cases"]}


def _row(output: str, case_id: str) -> str:
    """The case's line of the terminal summary table."""
    return next(line for line in output.splitlines() if line.startswith(case_id + " "))


def test_nonfinite_outputs_are_findings_and_every_file_stays_strict_json(pytester, models):
    root = _project(pytester, models, ["lognan", "expinf", "fp16over", "allnan"], "[fp32, fp16]")
    outcome = run_suite(pytester, *FAST)
    text = outcome.stdout.str()
    assert "Traceback" not in text
    cases = _cases(root)
    assert len(cases) == 8, "every case ran and was recorded"

    # partly NaN at fp32: flagged (counts per output), not failed; fp16 with NaN at the same places passes too
    log32 = cases["lognan-fp32-b2"]
    assert log32["status"] == "passed" and log32["reference_nonfinite"]["y"]["nan"] > 0
    assert log32["reference_nonfinite"]["y"]["elements"] == 2 * WIDTH
    assert any("fp32 output 'y':" in w and "values are NaN/inf" in w for w in log32["warnings"])
    assert _row(text, "lognan-fp32-b2").rstrip().endswith("new, nonfinite")
    assert "non-finite fp32 outputs: lognan-fp32-b2: 'y':" in text

    # +inf at fp32: flagged with its sign; fp16 also overflows where fp32 did not (x below 0.09): that fails it
    inf32 = cases["expinf-fp32-b2"]["reference_nonfinite"]["y"]
    assert inf32["posinf"] > 0 and inf32["nan"] == 0
    assert _row(text, "expinf-fp16-b2").rstrip().endswith("accuracy (NaN/inf), nonfinite")

    # finite at fp32, overflowing at fp16: the fp16 case fails its accuracy check, saying so
    assert cases["fp16over-fp32-b2"]["reference_nonfinite"] == {}
    over = cases["fp16over-fp16-b2"]
    assert over["status"] == "failed"
    line = over["message"].splitlines()[0]
    assert line.startswith("fp16over-fp16-b2: fp16 output 'y': ") and "where fp32 is finite" in line
    assert over["accuracy"]["outputs"]["y"]["nonfinite"] > 0
    assert _row(text, "fp16over-fp16-b2").rstrip().endswith("accuracy (NaN/inf)")

    # nothing but NaN at fp32: never a silent pass
    for case_id in ("allnan-fp32-b2", "allnan-fp16-b2"):
        assert cases[case_id]["status"] == "failed"
        assert (
            f"{case_id}: fp32 output 'y': all {2 * WIDTH} values are NaN/inf ({2 * WIDTH} NaN)"
            in cases[case_id]["message"]
        )
        assert _row(text, case_id).rstrip().endswith("nonfinite")
    outcome.assert_outcomes(passed=4, failed=4)

    reports = root / "reports"
    strict((reports / "benchmark.json").read_text())
    summary = (reports / "summary.md").read_text()
    assert "**Non-finite fp32 outputs (" in summary and "allnan-fp32-b2 (nonfinite)" in summary
    assert "fp16over-fp16-b2 (accuracy)" in summary
    html = (reports / "report.html").read_text()
    assert 'id="nonfinite"' in html and "accuracy (NaN/inf)" in html
    assert 'id="inputs-table"' in html, "the inputs fed are shown per case"


def _nan_results(path: Path) -> None:
    nan, inf = math.nan, math.inf
    cases = [
        CaseResult(
            id=f"m-fp32-b{b}",
            params={"suite": "s", "model": "m", "precision": "fp32", "batch_size": b},
            verdict="unchanged",
            metrics={"latency_median_ms": nan if b == 2 else 1.0, "latency_p99_ms": inf, "throughput_sps": 100.0 * b},
            stats={"latency_ms": {"min": 0.5, "median": nan if b == 2 else 1.0, "p99": inf}},
            samples={"latency_ms": [1.0, nan, 1.2, inf]},
            comparisons=[
                {
                    "metric": "latency_median_ms",
                    "current": nan,
                    "baseline": 1.0,
                    "change": nan,
                    "tolerance": 0.1,
                    "verdict": "unchanged",
                }
            ],
            baseline={"metrics": {"latency_median_ms": nan}, "latency_quantiles_ms": [nan, 1.0, inf]},
            reference_nonfinite={"y": {"elements": 4, "nan": 1, "posinf": 0, "neginf": 0}},
        )
        for b in (1, 2, 4)
    ]
    RunResults(environment={"key": "k"}, cases=cases, suites={"s": "s.yaml"}).write(path)


def test_harness_report_renders_a_results_file_holding_nan(tmp_path):
    results = tmp_path / "results.json"
    _nan_results(results)
    data = strict(results.read_text())  # written as strict JSON...
    assert data["cases"][1]["metrics"]["latency_median_ms"] is None
    assert data["nonfinite"]["/cases/1/metrics/latency_median_ms"] == "NaN"
    back = RunResults.read(results)  # ...and read back as the same floats
    assert (
        math.isnan(back.cases[1].metrics["latency_median_ms"]) and back.cases[0].metrics["latency_p99_ms"] == math.inf
    )

    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "report", str(results), "-o", str(out), "--no-step-summary"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    strict((out / "benchmark.json").read_text())
    html = (out / "report.html").read_text()
    assert "NaN/inf not drawn: m-fp32-b1, m-fp32-b2, m-fp32-b4" in html  # the plots say what they left out
    assert "&#39;y&#39;: 1 of 4 (1 NaN)" in html
    assert (out / "summary.md").read_text().count("(1 NaN)") == 3


def test_a_results_file_with_literal_nan_tokens_still_renders(tmp_path):
    results = tmp_path / "results.json"
    _nan_results(results)
    data = read_json(results)
    results.write_text(json.dumps(data))  # Python's own NaN / Infinity tokens, as another tool might write them
    assert "NaN" in results.read_text()
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "report", str(results), "--no-step-summary"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    strict((tmp_path / "benchmark.json").read_text())


def test_json_round_trip_of_nonfinite_numbers(tmp_path):
    data = {
        "a": [1.0, math.nan, {"x/y~z": math.inf}],
        "b": np.float32(-np.inf),
        "c": np.int64(3),
        "d": np.array([0.5, np.nan]),
    }
    text = dumps_json(data)
    parsed = strict(text)
    assert parsed["a"] == [1.0, None, {"x/y~z": None}] and parsed["c"] == 3
    assert parsed["nonfinite"] == {"/a/1": "NaN", "/a/2/x~1y~0z": "Infinity", "/b": "-Infinity", "/d/1": "NaN"}
    back = loads_json(text)
    assert "nonfinite" not in back
    assert math.isnan(back["a"][1]) and back["a"][2]["x/y~z"] == math.inf and back["b"] == -math.inf
    assert back["d"][0] == 0.5 and math.isnan(back["d"][1])
    assert dumps_json({"x": 1.0}) == '{\n  "x": 1.0\n}\n', "finite documents carry no extra key"
    with pytest.raises(ValueError, match="NaN is not a JSON number"):
        loads_json('{"x": NaN}', literals=False)
    assert math.isnan(loads_json('{"x": NaN}')["x"])
    # a pointer that leads nowhere (a hand edit) is ignored, a null it does not name stays null
    assert loads_json('{"x": null, "y": [null], "nonfinite": {"/z/1": "NaN", "/y/0": "NaN"}}')["x"] is None
    path = tmp_path / "doc.json"
    write_json(path, {"v": math.inf, "where": tmp_path, "kinds": {"b", "a"}})  # no value makes a write fail
    assert read_json(path) == {"v": math.inf, "where": str(tmp_path), "kinds": ["a", "b"]}


def test_the_gate_never_compares_nan_and_says_what_it_left_out():
    verdict = judge(
        "c",
        {"latency_median_ms": 1.0, "throughput_sps": 100.0},
        {"latency_median_ms": math.nan, "throughput_sps": 100.0},
        {"default": 0.1},
    )
    assert verdict.verdict == "unchanged"
    assert [c.metric for c in verdict.comparisons] == ["throughput_sps"]
    assert "c: not compared: median latency is not a finite number (baseline nan)" in verdict.message
    nothing = judge("c", {"latency_median_ms": math.inf}, {"latency_median_ms": 1.0}, {"default": 0.1})
    assert nothing.verdict == "new" and "rerun with --update-baselines" in nothing.message
    assert "this run inf" in nothing.message
    trials = judge(
        "c",
        {"latency_median_ms": 1.0},
        {"latency_median_ms": 1.0},
        {"default": 0.1},
        trials={"latency_median_ms": [1.0, 1.01, math.nan, 0.99]},
        baseline_trials={"latency_median_ms": [1.0, math.inf, 1.0, 1.02]},
    )
    assert trials.verdict == "unchanged" and trials.comparisons[0].trials == (3, 3)


def test_a_baseline_file_holding_nan_is_refused_in_one_line(pytester, models):
    root = _project(pytester, models, ["fp16over"], "[fp32]")
    run_suite(pytester, *FAST, "--update-baselines").assert_outcomes(passed=1)
    key = strict((root / "reports" / "results.json").read_text())["environment"]["key"]
    baseline = root / "baselines" / key / "nf.json"
    stored = json.loads(baseline.read_text())
    stored["cases"]["fp16over-fp32-b2"]["metrics"]["latency_median_ms"] = math.nan
    baseline.write_text(json.dumps(stored))  # a literal NaN, as a hand edit or another tool leaves it
    assert "NaN" in baseline.read_text()

    outcome = run_suite(pytester, *FAST)
    text = outcome.stdout.str() + outcome.stderr.str()
    assert "Traceback" not in text
    assert outcome.ret != 0
    assert str(baseline) in text and "--update-baselines" in text
    if (root / "reports" / "results.json").exists():  # refused before measuring, or recorded as the case's error
        strict((root / "reports" / "results.json").read_text())
