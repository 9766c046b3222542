"""One benchmarking run: what happens to each case, from model to verdict, in pipeline order.

The pytest plugin owns the command line and turns outcomes into pass / fail / skip; this module owns the run:
prepare the model, build the engine, generate inputs, measure the trials, summarize, compare with the baseline,
confirm a regression by measuring again, profile layer by layer and say where a change went, decide, record. Results
are written after every case, and baselines (with ``--update-baselines``) too, so nothing finished is lost. The
stages are public: A/B mode (harness.run.ab, a subclass that replaces :meth:`HarnessSession.evaluate`) compares with
a second variant measured in the same job instead of the stored baseline, and ``harness calibrate`` builds and
measures cases through them.
"""

from __future__ import annotations

import fnmatch
import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.attribution.diff import ProfileDiff, diff_profiles
from harness.attribution.record import LayerProfile
from harness.attribution.scopes import module_scopes_of_file, with_modules
from harness.backends.base import Backend, BackendContext, get_backend
from harness.core.errors import CaseSkipped, HarnessError, log_internal_error, output_error
from harness.core.messages import condensed
from harness.core.progress import Progress
from harness.core.results import CaseResult, RunResults, all_nonfinite
from harness.core.stats import summarize
from harness.judge.baselines import BaselineStore
from harness.judge.gate import Verdict, confirm, judge, judge_build
from harness.machine.environment import fingerprint
from harness.machine.telemetry import combine as combine_telemetry
from harness.measure.loop import measure
from harness.measure.probe import probe_ms
from harness.measure.trials import SlowedRunner, TrialSet, measure_rounds
from harness.models.inputs import generate_inputs, plan_inputs
from harness.models.sources import PreparedModel, prepare
from harness.run import precision
from harness.run.config import RunConfig
from harness.run.fresh import baseline_processes, confirms_in_fresh_process, measure_in_fresh_process
from harness.run.interleave import Interleaved, Variant, VariantFailed, interleave
from harness.suite.schema import Case, MeasureSpec, Suite

__all__ = ["HarnessSession", "RunConfig", "profile_iterations"]

PROFILE_MIN_ITERATIONS = 20  # enough inferences for a per-layer median and interquartile range
PROFILE_MAX_ITERATIONS = 200  # beyond this the medians hardly move, and the profiler's trace only grows
# CPU backends: passes at most; a pass was disturbed when its end-to-end median exceeds the measured median latency by
# this factor (ONNX Runtime's profiler adds a few percent; a neighbour's preemptions add whole time slices) or its
# layers' spreads add up to this share of their time (an undisturbed pass of the models here stays below 5%).
PROFILE_PASSES = 3
DISTURBED = 1.25
NOISY = 0.10


class HarnessSession:
    def __init__(self, config: RunConfig, progress: Progress | None = None) -> None:
        self.config = config
        self.progress = progress or Progress.silent()  # long phases: recipes, builds, the measuring pass
        self._backends: dict[str, Backend] = {}
        self._models: dict[tuple[str, ...], PreparedModel] = {}
        self._stores: dict[str, BaselineStore] = {}
        self._interleaved: dict[str, Interleaved] = {}  # case id -> built and measured by measure_interleaved
        self.references = precision.References(config, self.backend_for, self.prepared)  # fp32 outputs, per run
        self.results: RunResults | None = None
        self.results_path = Path(config.report_dir) / "results.json"

    # -- set-up, once per suite ------------------------------------------------------------------------------
    def backend_context(self) -> BackendContext:
        """The run's folders, for every backend it creates: engines and caches under --harness-cache, per-case files
        under the report folder."""
        return BackendContext(Path(self.config.cache_dir), Path(self.config.report_dir) / "artifacts")

    def backend_for(self, suite: Suite) -> Backend:
        if suite.name not in self._backends:
            options = {**suite.backends.get(self.config.backend, {}), **self.config.backend_options}
            self._backends[suite.name] = get_backend(self.config.backend, options, self.backend_context())
        return self._backends[suite.name]

    def environment(self, backend: Backend) -> dict[str, Any]:
        if self.results is None:
            env = fingerprint(backend.name, backend.version(), backend.settings(), uses_gpu=backend.uses_gpu)
            self.results = RunResults(environment=env)
        return self.results.environment

    def store(self, key: str) -> BaselineStore:
        if key not in self._stores:
            # --update-baselines replaces an unusable file (the fix its refusal names) instead of refusing it
            self._stores[key] = BaselineStore(
                self.config.baseline_dir, key, replace_unusable=self.config.update_baselines
            )
        return self._stores[key]

    def measure_spec(self, suite: Suite) -> MeasureSpec:
        values = {**suite.measure.__dict__, **self.config.measure_overrides}
        return MeasureSpec(**values)

    # -- one case ---------------------------------------------------------------------------------------------
    def run_case(self, case: Case) -> CaseResult:
        """Run one case to a recorded :class:`CaseResult`; raises only for Ctrl-C (and for a results file the
        system refuses to write, :class:`~harness.core.errors.OutputError`). Whatever fails while building, measuring,
        checking or judging this case becomes its ``error`` (or ``skipped``) result, and the next case runs."""
        started = time.perf_counter()
        done = self._interleaved.pop(case.id, None)  # built and measured by measure_interleaved
        result = done.result if done is not None else CaseResult(id=case.id, params=case.params())
        try:
            backend = self.backend_for(case.suite)
            env = self.environment(backend)
            result.params["backend"] = {"name": backend.name, "settings": backend.settings()}
            if done is not None and done.error is not None:
                raise done.error  # what made measure_interleaved drop it, with its own traceback
            self.evaluate(case, backend, env, result, done)
            self._decide(result)
        except CaseSkipped as exc:
            result.status, result.message = "skipped", str(exc)
        except HarnessError as exc:
            result.status, result.message = "error", str(exc)
        except Exception as exc:  # a backend crash is this case's error, never the end of the run
            log = log_internal_error(exc, self.config.report_dir)
            result.status, result.message = "error", f"{case.id}: {type(exc).__name__}: {exc} (traceback in {log})"
        return self._finish(case, result, started)

    def evaluate(
        self, case: Case, backend: Backend, env: dict[str, Any], result: CaseResult, done: Interleaved | None
    ) -> None:
        """The stages between set-up and decision, into ``result``: build (unless the interleaved pass built it:
        ``done``), measure, check the outputs, judge against the stored baseline, confirm a regression. A/B mode
        overrides this with its own comparison (harness.run.ab.ABSession)."""
        if done is not None:
            engine, feeds = done.engine, done.feeds
        else:
            engine, feeds = self.build_case(case, backend, result)
        if self.config.build_only:
            self._build_only_case(case, env, engine, result)
            return
        self.measure_case(case, engine, feeds, result, done)
        self._check_accuracy(case, env, engine, feeds, result)
        verdict = self.gate_case(case, env, result)
        if verdict is not None and self._needs_confirmation(verdict):
            self._confirm_case(case, engine, feeds, env, result, verdict)
        # Last, once every judged number is taken: a profiler slows what it watches.
        profile = self.profile_case(case, engine, feeds, result)
        if verdict is not None and profile is not None:  # judged against the stored entry: its profile compares
            self.attribute(result, (result.baseline or {}).get("profile"), result.profile)

    def _finish(self, case: Case, result: CaseResult, started: float) -> CaseResult:
        result.duration_s = time.perf_counter() - started
        self.record(case.suite, result)
        return result

    def _build_only_case(self, case: Case, env: dict[str, Any], engine: Any, result: CaseResult) -> None:
        """--build-only: the build metrics are the case's metrics, and the gate judges only them."""
        result.metrics = {"build_time_ms": float(engine.build.build_time_ms)}
        if engine.build.engine_bytes is not None:
            result.metrics["engine_bytes"] = float(engine.build.engine_bytes)
        result.measure = {"build_only": True}
        entry = self.store(env["key"]).entry(case.suite.name, case.id)
        result.baseline = entry
        verdict = judge_build(case.id, result.metrics, entry["metrics"] if entry else None, case.model.tolerance)
        self.apply_verdict(result, verdict)

    def build_case(self, case: Case, backend: Backend, result: CaseResult) -> tuple[Any, dict[str, Any]]:
        """Prepare the model, generate its inputs and build the engine (recorded in ``result.build``)."""
        # A backend that cannot run anything here says so before the model is exported, converted or quantized.
        reason = backend.unavailable()
        if reason:
            raise CaseSkipped(reason)
        model = self.prepared(case)
        plans = plan_inputs(model, case)  # shapes, dtypes and value ranges decided from the graph
        result.inputs = {name: plan.record() for name, plan in plans.items()}
        feeds = generate_inputs(model, case, plans)
        # Conversion, or quantization with calibration: seconds to minutes, once; fp32 is the model as it is.
        converts = case.precision != "fp32"
        with self.progress.phase(f"{case.id}: {case.precision} recipe") if converts else nullcontext():
            model = precision.typed_for_case(case, backend, model, Path(self.config.cache_dir), result)
        with self.progress.phase(f"{case.id}: build"):
            engine = backend.build(model, case)
        result.build = {
            "build_time_ms": engine.build.build_time_ms,
            "engine_bytes": engine.build.engine_bytes,
            "cache_hit": engine.build.cache_hit,
            **engine.build.details,
        }
        return engine, feeds

    def slowdown_for(self, case: Case) -> float:
        """The --simulate-slowdown factor for this case (1.0 when it is not selected)."""
        patterns = self.config.slowdown_cases
        if self.config.slowdown == 1.0 or (patterns and not any(fnmatch.fnmatchcase(case.id, p) for p in patterns)):
            return 1.0
        return self.config.slowdown

    def open_runner(self, case: Case, engine: Any, feeds: dict[str, Any], slowdown: float | None = None) -> Any:
        """A fresh runner for one trial, slowed down by ``slowdown`` (1.0: not at all; None: as --simulate-slowdown
        selects this case)."""
        runner = engine.runner(feeds)
        factor = self.slowdown_for(case) if slowdown is None else slowdown
        return SlowedRunner(runner, factor) if factor != 1.0 else runner

    def measure_trials(
        self,
        case: Case,
        variants: list[Variant],
        uses_gpu: bool = False,
        rounds: int | None = None,
        split: int | None = None,
        tag_failures: bool = False,
    ) -> list[TrialSet]:
        """The suite's trials (or ``rounds``) of every (case, engine, feeds) variant, interleaved round by round;
        each trial measures ``1 / split`` of the suite's budget (default: ``1 / trials``). A/B (``split`` given)
        needs no speed probe: the pairs cancel the runner's speed. With ``tag_failures``, an exception of one
        variant's runner is raised as :class:`~harness.run.interleave.VariantFailed`, naming the variant, so the
        pass can go on without it."""
        spec = self.measure_spec(case.suite)

        def guarded(variant: int, call: Callable[[], Any]) -> Any:
            if not tag_failures:
                return call()
            try:
                return call()
            except Exception as exc:
                raise VariantFailed(variant, exc) from exc

        openers = [lambda i=i, v=v: guarded(i, lambda: self.open_runner(*v)) for i, v in enumerate(variants)]

        def timed(variant: int, runner: Any, trial: MeasureSpec) -> Any:
            batch = variants[variant][0].batch_size  # the variants of --interleave are cases of several batch sizes
            # A runner that times its own loop (trtexec) returns the trial; the others are timed here, step by step.
            measured = guarded(variant, lambda: runner.measure(trial, batch))
            if measured is not None:
                return measured
            options = {"uses_gpu": True} if uses_gpu else {}
            return guarded(variant, lambda: measure(runner, trial, batch, **options))

        total_rounds = rounds or spec.trials
        label = f"{case.suite.name}: measure {len(variants)} cases" if len(variants) > 1 else f"{case.id}: measure"
        with self.progress.phase(label, total=total_rounds * len(variants)) as phase:

            def on_trial(variant: int, round_: int, _: Any) -> None:
                phase.advance(note=f"round {round_ + 1}/{total_rounds}, {variants[variant][0].id}")

            per_variant = measure_rounds(
                openers,
                spec,
                total_rounds,
                timed,
                on_trial=on_trial,
                cpu_time=not uses_gpu,
                split=split,
                probe=split is None,
            )
        return [TrialSet(v[0].batch_size, measurements) for v, measurements in zip(variants, per_variant, strict=True)]

    def measure_interleaved(
        self, cases: list[Case], progress: Callable[[str], None] | None = None, explicit: bool = True
    ) -> None:
        """``--interleave``: build ``cases`` and measure their trials round by round across the cases of each suite
        before their test items run (harness.run.interleave says why); :meth:`run_case` then judges what was
        measured here and records the failure of a case the pass dropped. Not ``explicit``: only the suites the
        pass takes by default (CPU backends, more than one case)."""
        if self.config.build_only:
            if progress is not None and explicit:
                progress("not used: --build-only measures nothing")
            return
        self._interleaved.update(interleave(self, cases, progress or (lambda line: None), explicit))

    def uses_gpu(self, suite: Suite) -> bool:
        """Whether the suite's backend runs on a GPU (its timings then wait for the device, not the CPU)."""
        return self.backend_for(suite).uses_gpu

    def measure_case(
        self, case: Case, engine: Any, feeds: dict[str, Any], result: CaseResult, done: Interleaved | None = None
    ) -> None:
        """Measure the case's trials, unless :meth:`measure_interleaved` measured them already (``done``); the
        record says which (``measure.interleaved_cases``: how many cases shared the rounds, 1 when back to back)."""
        trials = done.trials if done is not None else None
        if trials is None:
            (trials,) = self.measure_trials(case, [(case, engine, feeds)], self.uses_gpu(case.suite))
        pids = None
        if self.config.update_baselines:
            trials, pids = self._from_more_processes(case, trials, result)
        self.record_trials(case, trials, engine, result)
        if pids is not None:  # the processes the baseline's trials came from, in order
            result.measure["baseline_processes"] = pids
        result.measure["interleaved_cases"] = done.rounds_with if done is not None and done.trials is not None else 1
        # Facts a backend learns only by running (device memory, files written beside the results).
        result.build.update({k: v for k, v in engine.build.details.items() if v is not None})

    def _from_more_processes(
        self, case: Case, trials: TrialSet, result: CaseResult
    ) -> tuple[TrialSet, list[int] | None]:
        """A baseline's trials: this process's ``trials`` and the suite's trials from as many new processes as
        --baseline-processes asks beyond this one (harness.run.fresh says why a GPU baseline needs them), pooled,
        and the ids of the processes they came from (None: this process alone was asked for). A new process that
        cannot measure leaves a warning, and the baseline holds the processes that could."""
        wanted = baseline_processes(self.config, self.uses_gpu(case.suite))
        if wanted == 1:
            return trials, None
        pids, measurements = [os.getpid()], list(trials.measurements)
        for _ in range(wanted - 1):
            try:
                more, pid = measure_in_fresh_process(self.config, case, factor=1)
            except HarnessError as exc:
                result.warnings.append(
                    f"baseline from {len(pids)} of {wanted} processes: a new process could not measure ({exc})"
                )
                break
            pids.append(pid)
            measurements += more.measurements
        return TrialSet(trials.batch_size, measurements), pids

    def record_trials(self, case: Case, trials: TrialSet, engine: Any, result: CaseResult) -> None:
        """Pooled samples and statistics for the report, per-trial values for the gate and the baseline."""
        samples = trials.latency_ms
        latency = summarize(samples)
        result.stats["latency_ms"] = latency
        result.samples["latency_ms"] = [round(v, 6) for v in samples]
        for name, values in trials.extra_ms.items():
            result.stats[name] = summarize(values)
            result.samples[name] = [round(v, 6) for v in values]
        result.metrics = {
            "latency_median_ms": latency["median"],
            "latency_mean_ms": latency["mean"],
            "latency_p90_ms": latency["p90"],
            "latency_p95_ms": latency["p95"],
            "latency_p99_ms": latency["p99"],
            "throughput_sps": trials.throughput_sps,
            "build_time_ms": engine.build.build_time_ms,
        }
        if engine.build.engine_bytes is not None:
            result.metrics["engine_bytes"] = float(engine.build.engine_bytes)
        result.trials = trials.per_trial()
        result.measure = {**trials.facts(), **self.measure_spec(case.suite).__dict__}
        result.warnings.extend(trials.warnings())
        result.telemetry = combine_telemetry([m.telemetry for m in trials.measurements])
        factor = self.slowdown_for(case)
        if factor != 1.0:
            result.measure["simulated_slowdown"] = factor
            result.warnings.append(f"simulated slowdown: every inference was made {factor:g}x slower by a busy-wait")

    def gate_case(self, case: Case, env: dict[str, Any], result: CaseResult) -> Verdict | None:
        """Compare with the stored baseline; None when there is nothing comparable (the verdict is then ``new``)."""
        store = self.store(env["key"])
        entry = store.entry(case.suite.name, case.id)
        result.baseline = entry
        if entry is not None and entry.get("params", {}).get("backend") != result.params["backend"]:
            result.verdict = "new"
            result.message = (
                f"{case.id}: the baseline was recorded with other backend settings "
                f"({entry.get('params', {}).get('backend')}); rerun with --update-baselines to replace it"
            )
            return None
        verdict = self.judge_case(case, result.metrics, result.trials, entry)
        self.apply_verdict(result, verdict)
        if entry is None:
            others = store.other_keys(case.suite.name)
            if others:
                result.message += f" (baselines for suite '{case.suite.name}' exist under: {', '.join(others)})"
        return verdict

    def judge_case(
        self, case: Case, metrics: dict[str, float], trials: dict[str, list[float]], entry: dict[str, Any] | None
    ) -> Verdict:
        """The gate's verdict on ``metrics`` / ``trials`` against a baseline ``entry`` (None: no baseline)."""
        return judge(
            case.id,
            metrics,
            entry["metrics"] if entry else None,
            case.model.tolerance,
            trials=trials,
            baseline_trials=(entry or {}).get("trials"),
            alpha=self.config.alpha,
        )

    @staticmethod
    def apply_verdict(result: CaseResult, verdict: Verdict) -> None:
        result.verdict = verdict.verdict
        result.comparisons = [c.to_dict() for c in verdict.comparisons]
        result.message = verdict.message

    def _needs_confirmation(self, verdict: Verdict) -> bool:
        return self.config.confirm and not self.config.update_baselines and verdict.verdict == "regressed"

    def _confirm_case(
        self, case: Case, engine: Any, feeds: dict[str, Any], env: dict[str, Any], result: CaseResult, first: Verdict
    ) -> None:
        """Measure a case that looks regressed again (fresh runners, fresh warm-ups; on a GPU, a fresh process:
        harness.run.fresh says why) and keep the combined verdict."""
        again, pid = self.remeasure(case, engine, feeds, result)
        metrics = {**result.metrics, "latency_median_ms": summarize(again.latency_ms)["median"]}
        metrics["throughput_sps"] = again.throughput_sps
        second = self.judge_case(case, metrics, again.per_trial(), result.baseline)
        self.apply_verdict(result, confirm(first, second))
        result.measure["confirmation"] = {
            "first_verdict": first.verdict,
            "first_comparisons": [c.to_dict() for c in first.comparisons],
            "second_verdict": second.verdict,
            "process": "same" if pid == os.getpid() else "fresh",
            "pid": pid,
            "trials": again.per_trial(),  # metric -> one value per trial, as the case's own "trials"
            **{k: v for k, v in again.facts().items() if k in ("iterations", "wall_ms")},
        }

    def remeasure(self, case: Case, engine: Any, feeds: dict[str, Any], result: CaseResult) -> tuple[TrialSet, int]:
        """The confirmation's trials and the id of the process that measured them (a new one per --confirm-in). A
        new process that cannot measure leaves a warning, and the run's own process measures instead."""
        uses_gpu = self.uses_gpu(case.suite)
        if confirms_in_fresh_process(self.config, uses_gpu):
            try:
                return measure_in_fresh_process(self.config, case)
            except HarnessError as exc:
                result.warnings.append(f"confirmation measured in this process: a new process could not ({exc})")
        (again,) = self.measure_trials(case, [(case, engine, feeds)], uses_gpu)
        return again, os.getpid()

    # -- where the time went ------------------------------------------------------------------------------------
    def profile_case(self, case: Case, engine: Any, feeds: dict[str, Any], result: CaseResult) -> LayerProfile | None:
        """The case's per-layer profile, into ``result.profile``: a fresh runner profiled in a pass of its own after
        the gated trials and their confirmation, as trtexec profiles apart from its timing loop (``--dumpProfile``
        with ``--separateProfileRun``), so the profiler's cost never reaches a judged number. None when profiling is
        off (--no-profile) or the backend has no profiler; a profiler that fails leaves a warning on the case and no
        profile: the profile explains a verdict, it never decides one."""
        if not self.config.profile:
            return None
        spec = self.measure_spec(case.suite)
        iterations = profile_iterations(spec, result.metrics.get("latency_median_ms"), self.config.profile_iterations)
        on_cpu = not self.uses_gpu(case.suite)
        measured = result.metrics.get("latency_median_ms")
        try:
            with self.progress.phase(f"{case.id}: layer profile"):
                passes: list[tuple[LayerProfile, float | None]] = []
                # CPU backends: a pass that a neighbour preempted is taken again, and the least disturbed one kept
                # (the minimum of repeats, as timeit advises: higher values are other processes' interference).
                while len(passes) < (PROFILE_PASSES if on_cpu else 1):
                    taken = self._profile_pass(case, engine, feeds, iterations, on_cpu)
                    if taken is None:
                        break
                    passes.append(taken)
                    if not _disturbed(taken[0], measured):
                        break
        except HarnessError as exc:
            result.warnings.append(f"no layer profile: {exc}")
            return None
        except Exception as exc:  # a profiler crash: logged, and the case keeps its verdict
            log = log_internal_error(exc, self.config.report_dir)
            result.warnings.append(f"no layer profile: {type(exc).__name__}: {condensed(exc)} (traceback in {log})")
            return None
        if not passes:
            return None
        profile, speed = min(passes, key=lambda taken: _noise(taken[0]))
        if len(passes) > 1:
            seen = ", ".join(f"{_end_to_end(p):.3g} ms ±{_noise(p):.2g}" for p, _ in passes)
            against = f"measured {measured:.3g} ms" if measured is not None else "no measured latency"
            note = f"least disturbed of {len(passes)} passes (end-to-end {seen}; {against})"
            profile = replace(profile, notes=(*profile.notes, note))
        profile = replace(profile, probe_ms=speed)
        # the modules the nodes came from, where the ONNX file says (a torch.export-based export's scopes)
        model = self.prepared(case)
        profile = with_modules(profile, module_scopes_of_file(str(model.path), model.sha256))
        result.profile = profile.to_dict()
        return profile

    def _profile_pass(
        self, case: Case, engine: Any, feeds: dict[str, Any], iterations: int, probed: bool
    ) -> tuple[LayerProfile, float | None] | None:
        """One profile of ``iterations`` inferences on a fresh runner, and (``probed``) the runner's own speed around
        it (harness.measure.probe), as around every trial: a host that slows the whole machine down moves every
        layer alike, and :meth:`attribute` takes that out."""
        speed = probe_ms() if probed else None
        # Never slowed: --simulate-slowdown's busy-wait is outside every layer, and its wrapper has no profiler.
        runner = self.open_runner(case, engine, feeds, slowdown=1.0)
        try:
            profile = runner.profile(iterations)
        finally:
            runner.close()
        if profile is None:
            return None
        return profile, (speed + probe_ms()) / 2 if speed is not None else None

    def attribute(
        self, result: CaseResult, before: dict[str, Any] | None, current: dict[str, Any] | None
    ) -> ProfileDiff | None:
        """Where the time went between ``before`` (the baseline entry's or the A/B reference's stored profile) and
        ``current`` (this case's): the diff into ``result.attribution`` and, when the verdict is regressed or
        improved, its top groups on the message's first line
        (``... (+12.1% > tolerance 10%; ...); where: Conv_12+Relu_13 +0.41 ms (71% of the change, tactic changed)``).
        Both are diffed as the files keep them, so ``harness explain`` finds the same; the current one at the
        baseline's runner speed where both passes read the speed probe (``runner_change`` in the attribution says
        by how much the runner was slower, +, or faster, -). None, and nothing recorded, when either side has no
        profile; a profile that cannot be read or diffed leaves a warning, never the case's error."""
        if current is None or before is None:
            return None
        try:
            baseline = LayerProfile.from_dict(before, "baseline profile")
            diff = diff_profiles(baseline, LayerProfile.from_dict(current, "profile"))
            result.attribution = diff.to_dict()
            where = diff.where() if result.verdict in ("regressed", "improved") else ""
        except HarnessError as exc:
            result.warnings.append(f"no attribution: {exc}; rerun with --update-baselines to record a fresh profile")
            return None
        except Exception as exc:
            log = log_internal_error(exc, self.config.report_dir)
            result.warnings.append(f"no attribution: {type(exc).__name__}: {condensed(exc)} (traceback in {log})")
            return None
        if where:
            first, newline, rest = result.message.partition("\n")
            result.message = f"{first}; {where}{newline}{rest}"
        return diff

    def _check_accuracy(
        self, case: Case, env: dict[str, Any], engine: Any, feeds: dict[str, Any], result: CaseResult
    ) -> None:
        """Typed outputs vs the fp32 reference (harness.run.precision); failures are applied by :meth:`_decide`."""
        entry = self.store(env["key"]).entry(case.suite.name, case.id)
        # the run that records a baseline is not judged against the one it replaces
        baseline = None if self.config.update_baselines else entry
        precision.check_accuracy(case, engine, feeds, result, baseline, self.references)

    def _decide(self, result: CaseResult) -> None:
        """The pytest outcome of a measured case (the gate's verdict, the run's options)."""
        if self.config.update_baselines:
            result.status = "passed"
        elif result.verdict == "regressed" or (result.verdict == "new" and self.config.strict_baselines):
            result.status = "failed"
        elif result.verdict == "ambiguous" and self.config.fail_on_ambiguous:
            result.status = "failed"
            result.message += "\n(--fail-on-ambiguous: an ambiguous verdict fails)"
        precision.apply_failures(result)  # past its accuracy tolerance: failed whatever the speed verdict

    def prepared(self, case: Case) -> PreparedModel:
        key = (case.model.source, case.model.location, case.model.weights or "")
        if key not in self._models:
            model = prepare(case.model, Path(self.config.cache_dir))
            self._models[key] = precision.with_weights(model, case, Path(self.config.cache_dir))
        return self._models[key]

    # -- persistence ------------------------------------------------------------------------------------------
    def record(self, suite: Suite, result: CaseResult) -> None:
        """Add ``result`` to the run's results file (and the baselines with --update-baselines) now, so a crash
        later loses nothing finished; a write the system refuses raises :class:`~harness.core.errors.OutputError`."""
        if self.results is None:  # the backend could not even be created: record the environment without it
            self.results = RunResults(environment=fingerprint(self.config.backend, "unavailable"))
        self.results.suites[suite.name] = str(suite.path)
        recorded = self.config.update_baselines and self.config.write_baselines and bool(result.metrics)
        unfit = recorded and _unfit_for_baseline(result)
        if unfit:
            result.warnings.append(f"not recorded as a baseline: {unfit}; the stored baseline is kept")
        self.results.add(result)
        try:
            self.results.write(self.results_path)
        except OSError as exc:  # the earlier cases stay in the file: it is replaced atomically or not at all
            raise output_error(exc, self.results_path, "--report-dir") from None
        if recorded and not unfit:
            self.store(self.results.environment["key"]).update(suite.name, [result], self.results.environment)


def profile_iterations(spec: MeasureSpec, latency_ms: float | None, asked: int | None = None) -> int:
    """Inferences the profile pass runs: ``asked`` (--profile-iterations), else as many as one trial's budget
    (``min_duration_ms / trials``) holds at the case's median latency (ms), kept between 20 (a median and a spread
    per layer) and 200, so the pass costs about one more trial."""
    if asked is not None:
        return asked
    if latency_ms is None or not math.isfinite(latency_ms) or latency_ms <= 0:
        return PROFILE_MIN_ITERATIONS
    fits = int(spec.min_duration_ms / max(spec.trials, 1) / latency_ms)
    return max(PROFILE_MIN_ITERATIONS, min(PROFILE_MAX_ITERATIONS, fits))


def _end_to_end(profile: LayerProfile) -> float:
    return profile.end_to_end_ms if profile.end_to_end_ms is not None else profile.total_ms


def _noise(profile: LayerProfile) -> float:
    """The layers' spreads added as independent errors (ms): what the diff's noise rule will allow them."""
    return math.sqrt(sum(layer.spread_ms**2 for layer in profile.layers))


def _disturbed(profile: LayerProfile, measured_ms: float | None) -> bool:
    """Whether a neighbour disturbed the pass: its end-to-end median well above the case's measured median latency
    (ms), or its layers' times spread wide."""
    slow = measured_ms is not None and math.isfinite(measured_ms) and _end_to_end(profile) > DISTURBED * measured_ms
    return slow or _noise(profile) > NOISY * profile.total_ms


def _unfit_for_baseline(result: CaseResult) -> str:
    """Why a case's numbers must not become its baseline ('' when they may): a case that errored, or whose outputs
    are wrong, would make a broken engine the yardstick of the next runs. A regression may be recorded: that is
    what --update-baselines is for."""
    if result.status == "error":
        return "the case errored"
    if (result.accuracy or {}).get("failures"):
        return "its outputs failed the accuracy check"
    if all_nonfinite(result.reference_nonfinite or {}):
        return "its fp32 outputs hold no finite value"
    return ""
