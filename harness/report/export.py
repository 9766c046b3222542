"""benchmark.json in pytest-benchmark's JSON schema, for ``pytest-benchmark compare`` and github-action-benchmark.

One benchmark per measured case: each timed inference is one round of one iteration, times in seconds as
pytest-benchmark stores them. The statistics are computed by pytest-benchmark's own ``Stats`` class so every field
(q1/q3 by its quartile rule, outlier counts, ops = 1 / mean) means exactly what its readers expect; our own
nearest-rank figures, the throughput in samples/s, the inputs fed and any NaN / infinities of the fp32 outputs
travel in ``extra_info``. Skipped and errored cases are left out, as pytest-benchmark leaves out benchmarks that
raised; so are samples that are not finite numbers (a timing is never NaN; a hand-edited results file can be).
"""

from __future__ import annotations

import math
import platform
from typing import Any

from pytest_benchmark import __version__ as PYTEST_BENCHMARK_VERSION
from pytest_benchmark.stats import Stats

from harness.core.results import CaseResult, RunResults

PROJECT = "trt-perf-harness"


def _machine_info(env: dict[str, Any]) -> dict[str, Any]:
    cpu = env.get("cpu") or {}
    os_text = str(env.get("os") or "")
    system, _, rest = os_text.partition("-")
    python = str(env.get("python") or platform.python_version())
    return {
        "node": env.get("hostname") or "",
        "processor": cpu.get("model") or "",
        "machine": cpu.get("arch") or "",
        "python_compiler": "",
        "python_implementation": "CPython",
        "python_implementation_version": python,
        "python_version": python,
        "python_build": ["", ""],
        "release": rest.split("-")[0] if rest else "",
        "system": system,
        "cpu": {"brand_raw": cpu.get("model") or "", "count": cpu.get("count"), "arch": cpu.get("arch") or ""},
        # Not in pytest-benchmark's own machine_info; readers ignore unknown keys.
        "gpus": env.get("gpus") or [],
        "backend": env.get("backend") or {},
        "baseline_key": env.get("key") or "",
    }


def _commit_info(env: dict[str, Any]) -> dict[str, Any]:
    commit = env.get("commit") or {}
    return {
        "id": commit.get("id") or "unversioned",
        "time": commit.get("time"),
        "author_time": commit.get("author_time"),
        "dirty": bool(commit.get("dirty")),
        "project": commit.get("project") or PROJECT,
        "branch": commit.get("branch") or "(unknown)",
    }


def _finite_samples(samples_ms: Any) -> list[float]:
    if not isinstance(samples_ms, list):
        return []
    return [float(v) for v in samples_ms if isinstance(v, (int, float)) and math.isfinite(v)]


def _stats(samples_ms: list[float]) -> dict[str, Any]:
    stats = Stats()
    for value in samples_ms:
        stats.update(value / 1e3)
    out: dict[str, Any] = stats.as_dict()
    out["data"] = list(stats.data)
    out["iterations"] = 1
    return out


def _benchmark(case: CaseResult, suite: str) -> dict[str, Any]:
    params = case.params
    simple = {k: v for k, v in params.items() if isinstance(v, (str, int, float, bool)) or v is None}
    extra: dict[str, Any] = {
        "unit_note": "stats are seconds per inference of one batch; throughput_sps is samples per second",
        "verdict": case.verdict,
        "status": case.status,
        **{k: v for k, v in case.metrics.items() if isinstance(v, (int, float))},
    }
    if isinstance(params.get("backend"), dict):
        extra["backend"] = params["backend"].get("name")
    if case.inputs:
        extra["inputs"] = case.inputs
    if case.reference_nonfinite:
        extra["reference_nonfinite"] = case.reference_nonfinite
    return {
        "group": f"{suite}/{params.get('model', case.id)}" if suite else str(params.get("model", case.id)),
        "name": f"test_case[{case.id}]",
        "fullname": f"{suite}::test_case[{case.id}]" if suite else f"test_case[{case.id}]",
        "params": {"harness_case": case.id, **simple},
        "param": case.id,
        "extra_info": extra,
        "options": {
            "disable_gc": False,
            "timer": "perf_counter",
            "min_rounds": case.measure.get("min_iterations", 1),
            "max_time": case.measure.get("max_duration_ms", 0) / 1e3 if case.measure.get("max_duration_ms") else 0,
            "min_time": case.measure.get("min_duration_ms", 0) / 1e3 if case.measure.get("min_duration_ms") else 0,
            "warmup": bool(case.measure.get("warmup_ms", 0)),
        },
        "stats": _stats(_finite_samples(case.samples.get("latency_ms"))),
    }


def to_pytest_benchmark(results: RunResults) -> dict[str, Any]:
    """The whole run as one pytest-benchmark document (``datetime`` is when the run was fingerprinted)."""
    env = results.environment
    benchmarks = [
        _benchmark(case, str(case.params.get("suite", "")))
        for case in results.cases
        if case.status in ("passed", "failed") and _finite_samples(case.samples.get("latency_ms"))
    ]
    return {
        "machine_info": _machine_info(env),
        "commit_info": _commit_info(env),
        "benchmarks": benchmarks,
        "datetime": env.get("date") or "",
        "version": PYTEST_BENCHMARK_VERSION,
    }
