"""Measuring for ``harness calibrate``: simulated CI runs of the selected cases, through the session's own stages
(:meth:`~harness.run.session.HarnessSession.build_case`, :meth:`~harness.run.session.HarnessSession.open_runner`).

Each run measures every selected case under the :func:`conditions`: the unmodified engine, an identical twin, and the
engine slowed down by each injected factor (``--simulate-slowdown``'s busy-wait). Against a baseline, each (case,
condition) but the twin gets ``trials`` trials, what ``pytest`` measures for a case, then ``trials`` more, its
confirmation, laid out in time as pytest lays them out: on CPU backends (or with ``--interleave``) round by round
across every case and condition, then each confirmation back to back; on GPU backends (or with ``--no-interleave``) a
case's trials back to back and its confirmation right after. The layout matters: the spread between runs is largely
the host's speed, which moves over seconds (benchmarks/perf/drift_source.py), so trials close together in time share
it and their spread understates it. Then each run holds one A/B job per condition other than the unmodified engine,
as harness.run.ab runs it: the unmodified engine and that condition interleaved for ``2 x pairs`` rounds of short
trials (harness.run.ab.ab_pairs), a job and its confirmation.

What it returns is the saved form (:func:`harness.calibrate.evaluating.save_trial`) that the evaluation reads.
"""

from __future__ import annotations

import fnmatch
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.calibrate.evaluating import save_trial
from harness.core.errors import HarnessError
from harness.core.results import CaseResult
from harness.measure.loop import measure
from harness.measure.trials import measure_rounds
from harness.models.sources import check_sources
from harness.run.ab import ab_pairs
from harness.run.config import RunConfig
from harness.run.session import HarnessSession
from harness.suite.load import load_suite


@dataclass(frozen=True)
class Plan:
    """What a calibration measures, and how (from ``harness calibrate``'s arguments)."""

    suites: tuple[str, ...]  # suite files
    cases: tuple[str, ...] = ()  # case-id globs; empty: every case of the suites
    backend: str = "onnxruntime"
    backend_options: dict[str, Any] = field(default_factory=dict)
    cache_dir: Path = Path(".harness-cache")
    measure_overrides: dict[str, float] = field(default_factory=dict)  # warmup_ms, min_duration_ms, ..., trials
    interleave: bool | None = None  # None: as pytest lays trials out for the backend (interleaved on a CPU)


def conditions(factors: tuple[float, ...]) -> list[tuple[str, float]]:
    """(label, slowdown factor): the unmodified engine, its twin (a second, identical variant for A/A pairs) and
    one variant per injected slowdown."""
    return [("1.0", 1.0), ("twin", 1.0), *((str(f), f) for f in factors)]


def measure_runs(plan: Plan, factors: tuple[float, ...], runs: int, progress: bool = False) -> dict[str, Any]:
    """Measure ``runs`` simulated CI runs in this process (see the module docstring); the saved form."""
    session = HarnessSession(
        RunConfig(
            backend=plan.backend,
            backend_options=dict(plan.backend_options),
            cache_dir=plan.cache_dir,
            measure_overrides=dict(plan.measure_overrides),
        )
    )
    suites = [load_suite(path) for path in plan.suites]
    for suite in suites:
        check_sources(suite)
    cases = [c for suite in suites for c in suite.cases()]
    if plan.cases:
        cases = [c for c in cases if any(fnmatch.fnmatchcase(c.id, p) for p in plan.cases)]
    if not cases:
        raise HarnessError("no case selected; check --cases against `harness validate SUITE`")
    spec = session.measure_spec(cases[0].suite)
    chunk = 2 * spec.trials  # a gate block, then its confirmation
    pairs = ab_pairs(spec.trials)
    variants: list[Any] = []
    labels: list[tuple[Any, str]] = []
    built: list[tuple[Any, Any, Any]] = []
    for case in cases:
        backend = session.backend_for(case.suite)
        try:
            engine, feeds = session.build_case(case, backend, CaseResult(id=case.id, params={}))
        except Exception as exc:  # a case that cannot run here is left out, with the reason
            print(f"skip {case.id}: {exc}")
            continue
        built.append((case, engine, feeds))
        for label, factor in conditions(factors):
            if label == "twin":  # against a baseline, A/A compares the unmodified engine across runs
                continue
            variants.append(functools.partial(session.open_runner, case, engine, feeds, slowdown=factor))
            labels.append((case, label))
    if not variants:
        raise HarnessError("none of the selected cases could be built with this backend")
    started = time.perf_counter()

    uses_gpu = session.uses_gpu(cases[0].suite)
    interleave = not uses_gpu if plan.interleave is None else plan.interleave  # pytest's own default

    def timed(_: int, runner: Any, trial: Any) -> Any:
        return measure(runner, trial, 1)  # the batch size (throughput) is set per case when the trials are read

    def rounds(openers: list[Any], count: int) -> list[list[Any]]:
        return measure_rounds(openers, spec, count, timed, cpu_time=not uses_gpu)

    # Per variant and run: `trials` trials of the gate, then `trials` of its confirmation, laid out in time as pytest
    # lays them out (see the module docstring).
    trials: list[list[Any]] = [[] for _ in variants]
    for r in range(runs):
        if progress:
            print(f"  run {r + 1}/{runs} ({time.perf_counter() - started:.0f} s)", flush=True)
        if interleave:
            for v, block in enumerate(rounds(variants, spec.trials)):
                trials[v] += block
        for v in range(len(variants)):
            if not interleave:
                trials[v] += rounds([variants[v]], spec.trials)[0]
            trials[v] += rounds([variants[v]], spec.trials)[0]  # the confirmation, right after
    saved = {}
    for (case, label), measurements in zip(labels, trials, strict=True):
        saved[f"{case.id}@{label}"] = {"batch_size": case.batch_size, "trials": [save_trial(m) for m in measurements]}
    # A/B jobs as harness.run.ab runs them: two variants, `pairs` short trials each, then as many again for the
    # confirmation; one job per condition against the unmodified engine.
    ab_saved: dict[str, dict[str, Any]] = {}
    if progress:
        print(f"  A/B jobs ({time.perf_counter() - started:.0f} s)", flush=True)
    for _ in range(runs):
        for case, engine, feeds in built:
            for label, factor in conditions(factors)[1:]:
                ref, cand = measure_rounds(
                    [
                        functools.partial(session.open_runner, case, engine, feeds, slowdown=1.0),
                        functools.partial(session.open_runner, case, engine, feeds, slowdown=factor),
                    ],
                    spec,
                    2 * pairs,
                    timed,
                    cpu_time=not uses_gpu,
                    split=pairs,
                    probe=False,
                )
                job = ab_saved.setdefault(
                    f"{case.id}@{label}", {"batch_size": case.batch_size, "reference": [], "candidate": []}
                )
                job["reference"] += [save_trial(m) for m in ref]
                job["candidate"] += [save_trial(m) for m in cand]
    return {
        "trials": saved,
        "ab": ab_saved,
        "settings": {
            "trials": spec.trials,
            "chunk": chunk,
            "pairs": pairs,
            "layout": "interleaved" if interleave else "back to back",
            "uses_gpu": uses_gpu,
            "measure": spec.__dict__,
            "backend": session.backend_for(cases[0].suite).settings(),
        },
    }
