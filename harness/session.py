"""One benchmarking run: what happens to each case, from model to verdict, in pipeline order.

The pytest plugin owns the command line and turns outcomes into pass / fail / skip; this module owns the run:
prepare the model, build the engine, generate inputs, measure, summarize, compare with the baseline, record.
Results are written after every case, and baselines (with ``--update-baselines``) too, so nothing finished is lost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.backends.base import Backend, get_backend
from harness.baseline import BaselineStore
from harness.environment import fingerprint
from harness.errors import CaseSkipped, HarnessError
from harness.gate import judge
from harness.measure import measure
from harness.models import PreparedModel, generate_inputs, prepare
from harness.results import CaseResult, RunResults
from harness.spec import Case, MeasureSpec, Suite
from harness.stats import summarize


@dataclass
class RunConfig:
    backend: str = "onnxruntime"
    backend_options: dict[str, Any] = field(default_factory=dict)  # from the command line; win over the suite's
    baseline_dir: Path = Path("baselines")
    report_dir: Path = Path("reports")
    cache_dir: Path = Path(".harness-cache")
    update_baselines: bool = False
    strict_baselines: bool = False
    measure_overrides: dict[str, float] = field(default_factory=dict)  # MeasureSpec fields set on the command line


class Outcome:
    """What the plugin should do with a finished case."""

    PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


class HarnessSession:
    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self._backends: dict[str, Backend] = {}
        self._models: dict[tuple[str, str], PreparedModel] = {}
        self._stores: dict[str, BaselineStore] = {}
        self.results: RunResults | None = None
        self.results_path = Path(config.report_dir) / "results.json"

    # -- set-up, once per suite ------------------------------------------------------------------------------
    def backend_for(self, suite: Suite) -> Backend:
        if suite.name not in self._backends:
            options = {**suite.backends.get(self.config.backend, {}), **self.config.backend_options}
            self._backends[suite.name] = get_backend(self.config.backend, options)
        return self._backends[suite.name]

    def environment(self, backend: Backend) -> dict[str, Any]:
        if self.results is None:
            env = fingerprint(
                backend.name, backend.version(), backend.settings(), uses_gpu=bool(getattr(backend, "uses_gpu", False))
            )
            self.results = RunResults(environment=env)
        return self.results.environment

    def store(self, key: str) -> BaselineStore:
        if key not in self._stores:
            self._stores[key] = BaselineStore(self.config.baseline_dir, key)
        return self._stores[key]

    def measure_spec(self, suite: Suite) -> MeasureSpec:
        values = {**suite.measure.__dict__, **self.config.measure_overrides}
        return MeasureSpec(**values)

    # -- one case ---------------------------------------------------------------------------------------------
    def run_case(self, case: Case) -> CaseResult:
        """Run one case to a recorded :class:`CaseResult`; raises only for Ctrl-C."""
        started = time.perf_counter()
        result = CaseResult(id=case.id, params=case.params())
        try:
            backend = self.backend_for(case.suite)
            env = self.environment(backend)
            result.params["backend"] = {"name": backend.name, "settings": backend.settings()}
            self._measure_case(case, backend, result)
            self._gate_case(case, env, result)
        except CaseSkipped as exc:
            result.status, result.message = "skipped", str(exc)
        except HarnessError as exc:
            result.status, result.message = "error", str(exc)
        except Exception as exc:  # a backend crash is this case's error, never the end of the run
            result.status, result.message = "error", f"{case.id}: {type(exc).__name__}: {exc}"
        result.duration_s = time.perf_counter() - started
        self.record(case.suite, result)
        return result

    def _measure_case(self, case: Case, backend: Backend, result: CaseResult) -> None:
        model = self.prepared(case)
        feeds = generate_inputs(model, case)
        engine = backend.build(model, case)
        result.build = {
            "build_time_ms": engine.build.build_time_ms,
            "engine_bytes": engine.build.engine_bytes,
            "cache_hit": engine.build.cache_hit,
            **engine.build.details,
        }
        runner = engine.runner(feeds)
        try:
            uses_gpu = bool(getattr(backend, "uses_gpu", False))
            m = measure(runner, self.measure_spec(case.suite), case.batch_size, uses_gpu=uses_gpu)
        finally:
            runner.close()
        latency = summarize(m.latency_ms)
        result.stats["latency_ms"] = latency
        result.samples["latency_ms"] = [round(v, 6) for v in m.latency_ms]
        for name, values in m.extra_ms.items():
            result.stats[name] = summarize(values)
            result.samples[name] = [round(v, 6) for v in values]
        result.metrics = {
            "latency_median_ms": latency["median"],
            "latency_mean_ms": latency["mean"],
            "latency_p90_ms": latency["p90"],
            "latency_p95_ms": latency["p95"],
            "latency_p99_ms": latency["p99"],
            "throughput_sps": m.throughput_sps,
            "build_time_ms": engine.build.build_time_ms,
        }
        if engine.build.engine_bytes is not None:
            result.metrics["engine_bytes"] = float(engine.build.engine_bytes)
        result.measure = {
            "iterations": m.iterations,
            "wall_ms": m.wall_ms,
            "warmup_iterations": m.warmup_iterations,
            "warmup_ms": m.warmup_ms,
            **self.measure_spec(case.suite).__dict__,
        }
        result.warnings.extend(m.warnings())
        result.telemetry = m.telemetry

    def _gate_case(self, case: Case, env: dict[str, Any], result: CaseResult) -> None:
        store = self.store(env["key"])
        entry = store.entry(case.suite.name, case.id)
        if entry is not None and entry.get("params", {}).get("backend") != result.params["backend"]:
            result.verdict = "new"
            result.message = (
                f"{case.id}: the baseline was recorded with other backend settings "
                f"({entry.get('params', {}).get('backend')}); rerun with --update-baselines to replace it"
            )
            result.baseline = entry
        else:
            verdict = judge(case.id, result.metrics, entry["metrics"] if entry else None, case.model.tolerance)
            result.verdict = verdict.verdict
            result.comparisons = [c.to_dict() for c in verdict.comparisons]
            result.baseline = entry
            result.message = verdict.message
            if entry is None:
                others = store.other_keys(case.suite.name)
                if others:
                    result.message += f" (baselines for suite '{case.suite.name}' exist under: {', '.join(others)})"
        if self.config.update_baselines:
            result.status = "passed"
        elif result.verdict == "regressed" or (result.verdict == "new" and self.config.strict_baselines):
            result.status = "failed"

    def prepared(self, case: Case) -> PreparedModel:
        key = (case.model.source, case.model.location)
        if key not in self._models:
            self._models[key] = prepare(case.model, Path(self.config.cache_dir))
        return self._models[key]

    # -- persistence ------------------------------------------------------------------------------------------
    def record(self, suite: Suite, result: CaseResult) -> None:
        if self.results is None:  # the backend could not even be created: record the environment without it
            self.results = RunResults(environment=fingerprint(self.config.backend, "unavailable"))
        self.results.suites[suite.name] = str(suite.path)
        self.results.add(result)
        self.results.write(self.results_path)
        if self.config.update_baselines and result.metrics:
            self.store(self.results.environment["key"]).update(suite.name, [result], self.results.environment)
