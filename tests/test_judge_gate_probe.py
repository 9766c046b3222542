"""The speed probe's evidence in the gate: a slower runner is not slower code."""

from __future__ import annotations

import re

import numpy as np

from harness.judge.gate import Verdict, judge
from harness.measure.probe import probe_model, probe_ms

TOLERANCE = {"default": 0.10}


def trials(latency: float, probe: float | None, seed: int) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    lat = list(latency * (1 + 0.01 * rng.standard_normal(5)))
    out = {
        "latency_median_ms": lat,
        "throughput_sps": [1000.0 / v for v in lat],
        "cpu_ms": lat,  # full CPU share: CPU time moves with wall time, as under a host-level slowdown
        "cpu_share": [1.0] * 5,
    }
    if probe is not None:
        out["probe_ms"] = list(probe * (1 + 0.01 * rng.standard_normal(5)))
    return out


def judged(current: dict[str, list[float]], baseline: dict[str, list[float]]) -> Verdict:
    metrics = {m: float(np.median(v)) for m, v in current.items()}
    base = {m: float(np.median(v)) for m, v in baseline.items()}
    return judge("c", metrics, base, TOLERANCE, trials=current, baseline_trials=baseline)


def verdict(current: dict[str, list[float]], baseline: dict[str, list[float]]) -> tuple[str, str]:
    out = judged(current, baseline)
    return out.verdict, out.message


def test_a_change_the_probe_shares_is_the_runner_not_the_code():
    out = judged(trials(12.5, 1.25, 1), trials(10.0, 1.0, 2))  # 25 % slower, and so was the runner
    assert out.verdict == "unchanged"
    latency = next(c for c in out.comparisons if c.metric == "latency_median_ms")
    assert abs(latency.change) < 0.03 and abs(latency.current - 10.0) < 0.3  # at the baseline's runner speed
    assert "the runner ran 25." in latency.note and "% slower (speed probe); measured 12." in latency.note


def test_a_change_the_probe_does_not_share_is_a_regression():
    assert verdict(trials(12.5, 1.0, 1), trials(10.0, 1.0, 2))[0] == "regressed"


def test_a_regression_beyond_the_runner_slowdown_still_fails():
    # 50 % slower on a runner 10 % slower: 36 % after the correction, beyond the 10 % tolerance.
    result, message = verdict(trials(15.0, 1.1, 1), trials(10.0, 1.0, 2))
    assert result == "regressed" and "the runner ran 10." in message
    assert re.search(r"median latency 1[34]\.\d ms vs baseline \S+ ms \(\+3\d\.\d% > tolerance 10%", message)


def test_a_regression_hidden_by_a_faster_runner_is_found():
    # 20 % slower code on a runner 20 % faster: the wall clock shows no change, the probe shows the regression.
    assert verdict(trials(10.0, 0.8, 1), trials(10.0, 1.0, 2))[0] == "regressed"


def test_a_faster_runner_does_not_make_an_improvement():
    out = judged(trials(8.0, 0.8, 1), trials(10.0, 1.0, 2))
    assert out.verdict == "unchanged"
    assert all("faster (speed probe)" in c.note for c in out.comparisons)


def test_without_probe_values_the_verdict_stands():
    assert verdict(trials(12.5, None, 1), trials(10.0, None, 2))[0] == "regressed"


def test_probe_reading_is_a_positive_time_in_ms():
    readings = [probe_ms() for _ in range(3)]
    assert all(0 < r < 1000 for r in readings)
    assert max(readings) < 2 * min(readings), "a fixed workload: readings agree within a factor of 2 even here"


def test_the_probe_model_keeps_an_ir_version_that_older_onnxruntimes_read():
    import onnx

    model = probe_model()
    onnx.checker.check_model(model)
    # onnxruntime refuses an IR version newer than it knows ("Unsupported model IR version: 14, max supported IR
    # version: 13"), so the probe keeps the IR version of opset 13's time, whatever onnx writes by default.
    assert model.ir_version == 8 < onnx.IR_VERSION
