"""Suite numbers, YAML keys, encodings and baseline records are validated where they are read, one line each."""

from __future__ import annotations

import math

import pytest

from harness.core.errors import SuiteError
from harness.judge.baselines import baseline_problem
from harness.suite.load import load_suite
from harness.suite.schema import measure_value_problem

BASE = "suite: s\nmodels:\n  - name: m\n    onnx_zoo: light_squeezenet\n"


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("warmup_ms", math.inf, "expected a finite number, got inf"),
        ("min_duration_ms", math.nan, "expected a finite number, got nan"),
        ("min_duration_ms", -5, "expected a duration of 0 ms or more, got -5"),
        ("max_duration_ms", 0, "expected a duration above 0 ms, got 0"),
        ("min_iterations", 0, "expected a whole number of at least 1, got 0"),
        ("trials", 2.5, "expected a whole number of at least 1 (5 or more lets the gate tell noise apart), got 2.5"),
        ("warmup_ms", True, "expected a finite number, got True"),
        ("warmup_ms", "200", "expected a finite number, got '200'"),
    ],
)
def test_measure_values_must_be_finite_and_in_range(name, value, problem):
    assert measure_value_problem(name, value) == problem


@pytest.mark.parametrize(("name", "value"), [("warmup_ms", 0), ("min_duration_ms", 0.5), ("trials", 3.0)])
def test_measure_values_in_range_pass(name, value):
    assert measure_value_problem(name, value) is None


def test_duplicate_keys_name_both_lines_at_any_depth(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(BASE + "    batch_sizes: [1]\n    batch_sizes: [2]\n")
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert str(info.value) == (
        f"{path}: line 6: key 'batch_sizes' is given twice (lines 5 and 6); remove or rename one of them"
    )


def test_bytes_that_are_not_utf8_are_named_by_line_and_offset(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_bytes(BASE.encode() + b"description: \xff\n")
    with pytest.raises(SuiteError, match=r"line 5: byte 73 \(0xff\) is not UTF-8; save the file as UTF-8"):
        load_suite(path)


def test_an_input_range_must_be_finite_and_ordered(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(BASE + "    inputs: {x: {range: [0, .inf]}}\n")
    with pytest.raises(SuiteError, match=r"models\[0\]\.inputs\.x\.range: expected \[low, high\] of finite numbers"):
        load_suite(path)


def _baseline(**case: object) -> dict[str, object]:
    entry = {"params": {"suite": "s"}, "metrics": {"latency_median_ms": 1.0}, "trials": {}, **case}
    return {"schema": "harness.baseline/2", "suite": "s", "cases": {"m-fp32-b1": entry}}


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        (_baseline(), None),
        ({"schema": "x", "cases": {}}, "not a baseline file of schema harness.baseline/2"),
        ({**_baseline(), "suite": "t"}, "holds the baselines of suite 't', not of 's' (copied from another suite?)"),
        (_baseline(params={"suite": "t"}), "case 'm-fp32-b1': params.suite is 't', not 's'"),
        (_baseline(metrics={"latency_median_ms": math.nan}), "case 'm-fp32-b1': metrics.latency_median_ms: expected"),
        (_baseline(metrics=[1.0]), "case 'm-fp32-b1': metrics: expected a mapping of metric name -> number"),
        (_baseline(trials={"throughput_sps": [1.0, None]}), "case 'm-fp32-b1': trials.throughput_sps: expected a list"),
    ],
)
def test_baseline_documents_are_checked_record_by_record(document, problem):
    found = baseline_problem(document, "s")
    assert found == problem or (problem is not None and found is not None and found.startswith(problem))
