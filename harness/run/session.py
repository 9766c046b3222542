"""One benchmarking run: what happens to each case, from model to verdict, in pipeline order.

The pytest plugin owns the command line and turns outcomes into pass / fail / skip; this module owns the run:
prepare the model, build the engine, generate inputs, measure the trials, summarize, compare with the baseline,
confirm a regression by measuring again, decide, record. Results are written after every case, and baselines (with
``--update-baselines``) too, so nothing finished is lost. In A/B mode (harness.run.ab) the comparison is with a second
variant measured in the same job instead of the stored baseline.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.backends.base import Backend, get_backend
from harness.core.errors import CaseSkipped, HarnessError, log_internal_error, output_error
from harness.core.progress import Progress
from harness.core.results import CaseResult, RunResults, all_nonfinite
from harness.core.stats import summarize
from harness.judge.baselines import BaselineStore
from harness.judge.gate import ALPHA, Verdict, confirm, judge, judge_build
from harness.machine.environment import fingerprint
from harness.machine.telemetry import combine as combine_telemetry
from harness.measure.loop import measure
from harness.measure.trials import SlowedRunner, TrialSet, measure_rounds
from harness.models.prepare import PreparedModel, generate_inputs, plan_inputs, prepare
from harness.run import precision
from harness.suite.schema import Case, MeasureSpec, Suite


@dataclass
class RunConfig:
    backend: str = "onnxruntime"
    backend_options: dict[str, Any] = field(default_factory=dict)  # from the command line; win over the suite's
    baseline_dir: Path = Path("baselines")
    report_dir: Path = Path("reports")
    cache_dir: Path = Path(".harness-cache")
    update_baselines: bool = False
    build_only: bool = False  # build (or fetch from the engine cache) and gate build metrics; measure nothing
    # False in pytest-xdist workers: the controller writes the baselines once, from the merged results, so two
    # workers never read-modify-write one baseline file at the same time.
    write_baselines: bool = True
    strict_baselines: bool = False
    measure_overrides: dict[str, float] = field(default_factory=dict)  # MeasureSpec fields set on the command line
    confirm: bool = True  # measure a case that looks regressed again before failing it
    fail_on_ambiguous: bool = False  # an ambiguous verdict fails the case too
    alpha: float = ALPHA  # one-sided level of the gate's tests
    slowdown: float = 1.0  # --simulate-slowdown FACTOR: every inference of the selected cases takes FACTOR x longer
    slowdown_cases: tuple[str, ...] = ()  # case-id globs the slowdown applies to; empty: every case
    ab: Any = None  # harness.run.ab.ABConfig: compare with a second variant in the same job instead of the baseline


class Outcome:
    """What the plugin should do with a finished case."""

    PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


@dataclass
class Interleaved:
    """A case built (and then measured) ahead of its test item by :meth:`HarnessSession.measure_interleaved`."""

    result: CaseResult
    engine: Any
    feeds: dict[str, Any]
    trials: TrialSet | None = None
    error: Exception | None = None  # why it was dropped from the pass; run_case records it as the case's outcome
    rounds_with: int = 0  # how many cases its trials were interleaved with (itself included)


class _VariantFailed(Exception):
    """Variant ``index`` of a measuring pass raised ``error`` (:meth:`HarnessSession.measure_trials`)."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(f"variant {index}: {error}")
        self.index = index
        self.error = error


def _reason(exc: BaseException, case_id: str = "", limit: int = 160) -> str:
    """An exception as a short phrase for a progress line that names the case already (its first line, without a
    leading ``<case id>: ``, shortened)."""
    text = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = text.removeprefix(f"{case_id}: ") if case_id else text
    if not isinstance(exc, (HarnessError, CaseSkipped)):
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


class HarnessSession:
    def __init__(self, config: RunConfig, progress: Progress | None = None) -> None:
        self.config = config
        self.progress = progress or Progress.silent()  # long phases: recipes, builds, the measuring pass
        self._backends: dict[str, Backend] = {}
        self._models: dict[tuple[str, ...], PreparedModel] = {}
        self._stores: dict[str, BaselineStore] = {}
        self._interleaved: dict[str, Interleaved] = {}  # case id -> built and measured by measure_interleaved
        self.results: RunResults | None = None
        self.results_path = Path(config.report_dir) / "results.json"

    # -- set-up, once per suite ------------------------------------------------------------------------------
    def backend_for(self, suite: Suite) -> Backend:
        if suite.name not in self._backends:
            options = {**suite.backends.get(self.config.backend, {}), **self.config.backend_options}
            backend = get_backend(self.config.backend, options)
            # Backends that cache engines or write per-case files (TensorRT) follow the run's folders.
            if hasattr(backend, "cache_dir"):
                backend.cache_dir = Path(self.config.cache_dir)
            if hasattr(backend, "artifact_dir"):
                backend.artifact_dir = Path(self.config.report_dir) / "artifacts"
            self._backends[suite.name] = backend
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
            if self.config.ab is not None:
                from harness.run.ab import run_ab_case

                run_ab_case(self, case, backend, result)
            else:
                if done is not None:
                    engine, feeds = done.engine, done.feeds
                else:
                    engine, feeds = self._build_case(case, backend, result)
                if self.config.build_only:
                    self._build_only_case(case, env, engine, result)
                    self._decide(result)
                    return self._finish(case, result, started)
                self._measure_case(case, engine, feeds, result, done)
                self._check_accuracy(case, env, engine, feeds, result)
                verdict = self._gate_case(case, env, result)
                if verdict is not None and self._needs_confirmation(verdict):
                    self._confirm_case(case, engine, feeds, env, result, verdict)
            self._decide(result)
        except CaseSkipped as exc:
            result.status, result.message = "skipped", str(exc)
        except HarnessError as exc:
            result.status, result.message = "error", str(exc)
        except Exception as exc:  # a backend crash is this case's error, never the end of the run
            log = log_internal_error(exc, self.config.report_dir)
            result.status, result.message = "error", f"{case.id}: {type(exc).__name__}: {exc} (traceback in {log})"
        return self._finish(case, result, started)

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

    def _build_case(self, case: Case, backend: Backend, result: CaseResult) -> tuple[Any, dict[str, Any]]:
        """Prepare the model, generate its inputs and build the engine (recorded in ``result.build``)."""
        # A backend that cannot run anything here says so before the model is exported, converted or quantized.
        unavailable = getattr(backend, "unavailable", None)
        reason = unavailable() if callable(unavailable) else None
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

    def open_runner(self, case: Case, engine: Any, feeds: dict[str, Any]) -> Any:
        """A fresh runner for one trial, slowed down when --simulate-slowdown selects this case."""
        runner = engine.runner(feeds)
        factor = self.slowdown_for(case)
        return SlowedRunner(runner, factor) if factor != 1.0 else runner

    def measure_trials(
        self,
        case: Case,
        variants: list[tuple[Case, Any, dict[str, Any]]],
        uses_gpu: bool = False,
        rounds: int | None = None,
        split: int | None = None,
        tag_failures: bool = False,
    ) -> list[TrialSet]:
        """The suite's trials (or ``rounds``) of every (case, engine, feeds) variant, interleaved round by round;
        each trial measures ``1 / split`` of the suite's budget (default: ``1 / trials``). A/B (``split`` given)
        needs no speed probe: the pairs cancel the runner's speed. With ``tag_failures``, an exception of one
        variant's runner is raised as :class:`_VariantFailed`, naming the variant, so the pass can go on without it."""
        spec = self.measure_spec(case.suite)

        def guarded(variant: int, call: Callable[[], Any]) -> Any:
            if not tag_failures:
                return call()
            try:
                return call()
            except Exception as exc:
                raise _VariantFailed(variant, exc) from exc

        openers = [lambda i=i, v=v: guarded(i, lambda: self.open_runner(*v)) for i, v in enumerate(variants)]

        def timed(variant: int, runner: Any, trial: MeasureSpec) -> Any:
            batch = variants[variant][0].batch_size  # the variants of --interleave are cases of several batch sizes
            if hasattr(runner, "measure"):  # a runner that times its own loop (trtexec)
                return guarded(variant, lambda: runner.measure(trial, batch))
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
        """``--interleave``: measure the trials of ``cases`` round by round across cases (round r measures trial r
        of every case of a suite) before their test items run; :meth:`run_case` then judges what was measured here.

        Interleaving spreads each case's trials over the whole measuring pass, so a slow spell of the runner (a
        neighbour's job, a host slowing the guest down) touches one trial of many cases instead of every trial of
        one case, where the gate's rank test would take it for a change: on the development VM the host's speed
        moves over seconds, trials measured back to back spread by a third of what separates two runs, trials
        interleaved across six cases at least as much (harness calibrate, README). The price: every engine of the
        suite is held at once, and no case is finished (recorded) until the pass is over.

        A case that fails (its build, a runner, a trial) is dropped from its suite's pass and keeps the failure,
        which :meth:`run_case` records as its outcome; the pass starts again without it, so the other cases stay
        interleaved with each other. The progress lines say which cases were dropped and why.

        Not ``explicit`` (the default, neither --interleave nor --no-interleave): only suites of CPU backends with
        more than one selected case are interleaved; a GPU's engines stay one at a time in its memory, and GPU
        timings did not drift so (0.34% between runs on the H100)."""
        if self.config.ab is not None or self.config.build_only:
            if progress is not None and explicit:
                build_only = "--build-only measures nothing"
                progress(f"not used: {build_only if self.config.build_only else 'A/B mode interleaves its variants'}")
            return
        say = progress or (lambda line: None)
        by_suite: dict[str, list[Case]] = {}
        for case in cases:
            by_suite.setdefault(case.suite.name, []).append(case)
        for name, group in by_suite.items():
            if not explicit and not self._interleaves_by_default(group):
                continue
            variants, dropped, skipped = self._build_interleaved(group)
            if variants:
                say(self._pass_line(group[0].suite, len(variants), dropped, skipped))
                self._measure_pass(name, variants, say)
            elif dropped or skipped:
                say(f"{name}: nothing to interleave{self._dropped_text(dropped, skipped)}")

    def _build_interleaved(
        self, group: list[Case]
    ) -> tuple[list[tuple[Case, Any, dict[str, Any]]], list[tuple[str, str]], list[str]]:
        """Build every case of one suite's pass: the (case, engine, feeds) variants that built, the (id, reason)
        of those that failed and the ids of those skipped here (their failure is kept for run_case)."""
        variants: list[tuple[Case, Any, dict[str, Any]]] = []
        dropped: list[tuple[str, str]] = []
        skipped: list[str] = []
        for case in group:
            result = CaseResult(id=case.id, params=case.params())
            try:
                backend = self.backend_for(case.suite)
                self.environment(backend)
                engine, feeds = self._build_case(case, backend, result)
            except Exception as exc:
                self._interleaved[case.id] = Interleaved(result, None, {}, error=exc)
                if isinstance(exc, CaseSkipped):
                    skipped.append(case.id)
                else:
                    dropped.append((case.id, _reason(exc, case.id)))
                continue
            self._interleaved[case.id] = Interleaved(result, engine, feeds)
            variants.append((case, engine, feeds))
        return variants, dropped, skipped

    def _measure_pass(
        self, suite: str, variants: list[tuple[Case, Any, dict[str, Any]]], say: Callable[[str], None]
    ) -> None:
        """Measure ``variants`` interleaved; a variant that fails is dropped (keeping its error) and the pass is
        measured again without it. A failure that belongs to no variant leaves every case to run_case, which then
        measures it on its own: the line says so."""
        variants = list(variants)
        while variants:
            first = variants[0][0]
            try:
                measured = self.measure_trials(first, variants, self.uses_gpu(first.suite), tag_failures=True)
            except _VariantFailed as failed:
                case = variants.pop(failed.index)[0]
                self._interleaved[case.id].error = failed.error
                again = f"measuring the other {len(variants)} again" if variants else "no case left to measure"
                say(f"{suite}: dropped {case.id} from the interleaved pass ({_reason(failed.error, case.id)}); {again}")
                continue
            except Exception as exc:
                say(f"{suite}: interleaving failed ({_reason(exc)}); its cases are measured one after another")
                return
            for (case, _, _), trials in zip(variants, measured, strict=True):
                self._interleaved[case.id].trials = trials
                self._interleaved[case.id].rounds_with = len(variants)
            return

    def _pass_line(self, suite: Suite, n: int, dropped: list[tuple[str, str]], skipped: list[str]) -> str:
        """``demo: 5 cases, 3 rounds, interleaved (1 dropped: m-fp16-b1: <reason>)``; one case is not interleaved."""
        rounds = self.measure_spec(suite).trials
        how = "interleaved" if n > 1 else "back to back (nothing to interleave with)"
        cases = f"{n} case{'s' if n != 1 else ''}"
        return f"{suite.name}: {cases}, {rounds} rounds, {how}{self._dropped_text(dropped, skipped)}"

    @staticmethod
    def _dropped_text(dropped: list[tuple[str, str]], skipped: list[str]) -> str:
        parts = []
        if dropped:
            parts.append(f"{len(dropped)} dropped: " + "; ".join(f"{case_id}: {why}" for case_id, why in dropped))
        if skipped:
            parts.append(f"{len(skipped)} skipped: {', '.join(skipped)}")
        return f" ({'; '.join(parts)})" if parts else ""

    def uses_gpu(self, suite: Suite) -> bool:
        """Whether the suite's backend runs on a GPU (its timings then wait for the device, not the CPU)."""
        return bool(getattr(self.backend_for(suite), "uses_gpu", False))

    def _interleaves_by_default(self, group: list[Case]) -> bool:
        """Without --interleave / --no-interleave: more than one case of one suite, on a CPU backend."""
        try:
            return len(group) > 1 and not self.uses_gpu(group[0].suite)
        except Exception:  # a backend that cannot load here: run_case reports it in each item
            return False

    def _measure_case(
        self, case: Case, engine: Any, feeds: dict[str, Any], result: CaseResult, done: Interleaved | None = None
    ) -> None:
        """Measure the case's trials, unless :meth:`measure_interleaved` measured them already (``done``); the
        record says which (``measure.interleaved_cases``: how many cases shared the rounds, 1 when back to back)."""
        trials = done.trials if done is not None else None
        if trials is None:
            (trials,) = self.measure_trials(case, [(case, engine, feeds)], self.uses_gpu(case.suite))
        self.record_trials(case, trials, engine, result)
        result.measure["interleaved_cases"] = done.rounds_with if done is not None and done.trials is not None else 1
        # Facts a backend learns only by running (device memory, files written beside the results).
        result.build.update({k: v for k, v in engine.build.details.items() if v is not None})

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

    def _gate_case(self, case: Case, env: dict[str, Any], result: CaseResult) -> Verdict | None:
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
        verdict = self._judge(case, result.metrics, result.trials, entry)
        self.apply_verdict(result, verdict)
        if entry is None:
            others = store.other_keys(case.suite.name)
            if others:
                result.message += f" (baselines for suite '{case.suite.name}' exist under: {', '.join(others)})"
        return verdict

    def _judge(
        self, case: Case, metrics: dict[str, float], trials: dict[str, list[float]], entry: dict[str, Any] | None
    ) -> Verdict:
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
        """Measure a case that looks regressed again (fresh runners, fresh warm-ups) and keep the combined verdict."""
        (again,) = self.measure_trials(case, [(case, engine, feeds)], self.uses_gpu(case.suite))
        metrics = {**result.metrics, "latency_median_ms": summarize(again.latency_ms)["median"]}
        metrics["throughput_sps"] = again.throughput_sps
        second = self._judge(case, metrics, again.per_trial(), result.baseline)
        self.apply_verdict(result, confirm(first, second))
        result.measure["confirmation"] = {
            "first_verdict": first.verdict,
            "first_comparisons": [c.to_dict() for c in first.comparisons],
            "second_verdict": second.verdict,
            "trials": again.per_trial(),
            **{k: v for k, v in again.facts().items() if k in ("trials", "iterations", "wall_ms")},
        }

    def _check_accuracy(
        self, case: Case, env: dict[str, Any], engine: Any, feeds: dict[str, Any], result: CaseResult
    ) -> None:
        """Typed outputs vs the fp32 reference (harness.run.precision); failures are applied by :meth:`_decide`."""
        entry = self.store(env["key"]).entry(case.suite.name, case.id)
        precision.check_accuracy(self, case, engine, feeds, result, entry)

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
        key = (case.model.source, case.model.location, getattr(case.model, "weights", None) or "")
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
