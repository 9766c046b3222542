"""``harness calibrate``: how often the gate cries wolf, and how often it catches a real slowdown, on this runner.

It simulates CI runs. Each run is a separate process, as CI runs are (``--runs``, default 8; ``--in-process``
measures them all in one process, which is faster) and measures every selected case under four conditions: the
unmodified engine, an identical twin, and the engine slowed down by each injected factor (``--simulate-slowdown``'s
busy-wait, default +5% and +10%). Against a baseline, each (case, condition) but the twin gets ``trials`` trials,
what ``pytest`` measures for a case, then ``trials`` more, its confirmation, laid out in time as pytest lays them out:
on CPU backends (or with ``--interleave``) round by round across every case and condition, then each confirmation
back to back; on GPU backends (or with ``--no-interleave``) a case's trials back to back and its confirmation right
after. The layout matters: on the development VM most of the spread between runs is the host's speed, which moves
over seconds (benchmarks/perf/drift_source.py), so trials close together in time share it and their spread
understates it. Then each run holds one A/B job per condition other than the unmodified engine, as harness.run.ab runs
it: the unmodified engine and that condition interleaved for ``2 x pairs`` rounds of short trials
(harness.run.ab.ab_pairs), a job and its confirmation.

- Against a baseline: every ordered pair of distinct runs (baseline block from the unmodified condition of one run,
  current block from the condition under test in another) is one CI comparison, judged by the gate
  (harness.judge.gate.judge, confirmation included) and by the naive rule (pytest-benchmark's
  ``--benchmark-compare-fail=median:5%``: the median latency of all samples of the current block against that of
  the baseline block) on the very same measurements. ``--confirm-in fresh-process`` takes a block's confirmation
  from a third run instead of its own: on a GPU every process keeps its own level (docs/evidence/gpu-gate-h200.md),
  which a confirmation in the same process confirms and one in a new process does not.
- Interleaved A/B: every A/B job, the unmodified engine against its twin (A/A) or a slowed variant, judged on the
  paired ratios (harness.judge.gate.judge_paired), next to the naive rule on the same trials.

A/A comparisons give the false-alarm rate, the injected conditions the detection rate. For each mode it also finds
the quietest tolerance this runner supports (:func:`quietest`: the smallest of :data:`TOLERANCE_GRID` whose A/A
false alarms meet the target, judged again on the same trials) and what that tolerance detects: the setting to give
a suite here, and what it can and cannot catch. Comparisons that share runs are not independent, so the rates are
estimates with wider error than their count suggests; use more ``--runs`` on a quiet runner for tighter figures.
Measuring time is the gate's time per case (trials, warm-ups, speed probes, confirmations) over that of a
single-trial run of the same length (one warm-up, one measured loop); for A/B, both variants' time over a
single-trial run of each.
"""

from __future__ import annotations

import argparse
import fnmatch
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import HarnessError
from harness.judge.gate import ALPHA, NAIVE_THRESHOLD, confirm, judge, judge_paired, naive_regressed
from harness.measure.trials import SlowedRunner, TrialSet, measure_rounds
from harness.run.ab import ab_pairs

TARGETS = {"false_alarm": 0.01, "detect_10": 0.99, "detect_5": 0.90, "time_ratio": 3.0}
# Tolerances tried for the quietest one this runner supports (:func:`quietest`): the suites' usual settings.
# Where a confirmation is measured: in the run's own process right after its trials, or in another process.
CONFIRM_IN = ("same-process", "fresh-process")
TOLERANCE_GRID = (0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.10, 0.12, 0.15, 0.20, 0.25, 0.30)


@dataclass
class Tally:
    """Counts of one (case, condition): comparisons, gate alarms, gate ambiguous flags, naive alarms."""

    n: int = 0
    gate: int = 0
    ambiguous: int = 0
    naive: int = 0
    changes: list[float] = field(default_factory=list)  # the gate's estimated change of median latency

    def add(self, other: Tally) -> None:
        self.n += other.n
        self.gate += other.gate
        self.ambiguous += other.ambiguous
        self.naive += other.naive
        self.changes += other.changes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suites", nargs="*", help="suite YAML files (none with --from-json)")
    parser.add_argument("--cases", action="append", default=[], metavar="GLOB", help="case ids to use (repeatable)")
    parser.add_argument(
        "--runs",
        type=int,
        default=8,
        help="simulated CI runs, each a separate process measuring every condition (default 8)",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="measure every run in this process (faster; blind to what differs between processes)",
    )
    parser.add_argument(
        "--factors", default="1.05,1.10", help="injected slowdowns, comma-separated (default 1.05,1.10)"
    )
    parser.add_argument(
        "--tolerance",
        default="3%",
        help="the gate's tolerance in this calibration (default 3%%; the suites' own tolerances are not used, since "
        "a 10%% tolerance cannot catch +5%%)",
    )
    parser.add_argument("--alpha", type=float, default=ALPHA, help=f"the gate's test level (default {ALPHA})")
    parser.add_argument("--trials", type=int, default=None, help="trials per gate run (default: the suite's)")
    parser.add_argument("--no-confirm", action="store_true", help="calibrate the gate without confirmation")
    parser.add_argument(
        "--confirm-in",
        choices=CONFIRM_IN,
        default=CONFIRM_IN[0],
        help="where a case that looks regressed is measured again: same-process (default: right after, as pytest "
        "does) or fresh-process (the next simulated run's confirmation, as a gate that re-measures it in a new "
        "process would see it)",
    )
    parser.add_argument(
        "--interleave",
        action="store_true",
        default=None,
        help="lay the trials out round by round across every case and condition, as pytest does on CPU backends "
        "(the default there) and with --interleave",
    )
    parser.add_argument(
        "--no-interleave",
        action="store_false",
        dest="interleave",
        help="lay a case's trials out back to back, as pytest does on GPU backends (the default there) and with "
        "--no-interleave",
    )
    parser.add_argument("--warmup-ms", type=float, default=None)
    parser.add_argument("--min-duration-ms", type=float, default=None)
    parser.add_argument("--min-iterations", type=int, default=None)
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--backend-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--cache-dir", default=".harness-cache", help="prepared models and engines")
    parser.add_argument("--json", metavar="PATH", help="also write the figures and every trial's samples as JSON")
    parser.add_argument(
        "--from-json",
        metavar="PATH",
        help="measure nothing: re-evaluate the trials saved by an earlier --json (e.g. with another --tolerance)",
    )
    parser.add_argument("--worker-out", metavar="PATH", help=argparse.SUPPRESS)  # one run, in a child process


def _percent(text: str) -> float:
    value = text.strip()
    try:
        return float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise HarnessError(f"--tolerance {text}: expected a percentage such as 3%") from None


def run(args: argparse.Namespace) -> int:
    factors = _factors(args.factors)
    tolerance = _percent(args.tolerance)
    if args.from_json:
        return _reevaluate(args, tolerance)
    if not args.suites:
        raise HarnessError("give the suite files to measure, e.g. benchmarks/suites/zoo-cpu.yaml")
    if not 0 < args.alpha < 0.5:
        raise HarnessError(f"--alpha {args.alpha}: give a level between 0 and 0.5, e.g. 0.05")
    if args.worker_out:
        measured = _measure(args, factors, runs=1)
        from harness.core.fsio import write_json

        write_json(args.worker_out, measured)
        return 0
    if args.runs < 3:
        raise HarnessError(f"--runs {args.runs}: give at least 3 runs (12 or more for useful rates)")
    started = time.perf_counter()
    if args.in_process:
        measured = _measure(args, factors, runs=args.runs, progress=True)
    else:
        measured = _measure_in_processes(args)
    elapsed = time.perf_counter() - started
    report = _evaluate_measured(
        measured, factors, tolerance, args.alpha, not args.no_confirm, args.trials, args.confirm_in
    )
    report["elapsed_s"] = elapsed
    report["settings"]["runs_in"] = "one process" if args.in_process else "one process per run"
    for line in render(report, factors):
        print(line)
    if args.json:
        from harness.core.fsio import write_json

        write_json(args.json, {**report, "trials": measured["trials"], "ab": measured.get("ab", {})})
    return 0


def _measure(args: argparse.Namespace, factors: tuple[float, ...], runs: int, progress: bool = False) -> dict:
    """Measure ``runs`` simulated CI runs in this process (see the module docstring); the saved form."""
    from harness.core.results import CaseResult
    from harness.measure.loop import measure
    from harness.pytest_plugin import _parse_option
    from harness.run.session import HarnessSession, RunConfig
    from harness.suite.schema import load_suite

    overrides = {
        k: v
        for k, v in (
            ("warmup_ms", args.warmup_ms),
            ("min_duration_ms", args.min_duration_ms),
            ("min_iterations", args.min_iterations),
            ("trials", args.trials),
        )
        if v is not None
    }
    session = HarnessSession(
        RunConfig(
            backend=args.backend,
            backend_options=dict(_parse_option(o) for o in args.backend_option),
            cache_dir=Path(args.cache_dir),
            measure_overrides=overrides,
        )
    )
    cases = [c for path in args.suites for c in load_suite(path).cases()]
    if args.cases:
        cases = [c for c in cases if any(fnmatch.fnmatchcase(c.id, p) for p in args.cases)]
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
            engine, feeds = session._build_case(case, backend, CaseResult(id=case.id, params={}))
        except Exception as exc:  # a case that cannot run here is left out, with the reason
            print(f"skip {case.id}: {exc}")
            continue
        built.append((case, engine, feeds))
        for label, factor in _conditions(factors):
            if label == "twin":  # against a baseline, A/A compares the unmodified engine across runs
                continue
            variants.append(_opener(engine, feeds, factor))
            labels.append((case, label))
    if not variants:
        raise HarnessError("none of the selected cases could be built with this backend")
    started = time.perf_counter()

    uses_gpu = session.uses_gpu(cases[0].suite)
    interleave = not uses_gpu if args.interleave is None else args.interleave  # pytest's own default

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
        saved[f"{case.id}@{label}"] = {"batch_size": case.batch_size, "trials": [_saved(m) for m in measurements]}
    # A/B jobs as harness.run.ab runs them: two variants, `pairs` short trials each, then as many again for the
    # confirmation; one job per condition against the unmodified engine.
    ab_saved: dict[str, dict[str, Any]] = {}
    if progress:
        print(f"  A/B jobs ({time.perf_counter() - started:.0f} s)", flush=True)
    for _ in range(runs):
        for case, engine, feeds in built:
            for label, factor in _conditions(factors)[1:]:
                ref, cand = measure_rounds(
                    [_opener(engine, feeds, 1.0), _opener(engine, feeds, factor)],
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
                job["reference"] += [_saved(m) for m in ref]
                job["candidate"] += [_saved(m) for m in cand]
    return {
        "trials": saved,
        "ab": ab_saved,
        "settings": {
            "trials": spec.trials,
            "chunk": chunk,
            "pairs": pairs,
            "layout": "interleaved" if interleave else "back to back",
            "measure": spec.__dict__,
            "backend": session.backend_for(cases[0].suite).settings(),
        },
    }


def _measure_in_processes(args: argparse.Namespace) -> dict:
    """One child process per run (``harness calibrate --worker-out``), as CI runs are: whatever differs from one
    process to the next (allocations, placement in memory) differs between the simulated runs too."""
    import json
    import subprocess
    import sys
    import tempfile

    forwarded = [*args.suites, "--factors", args.factors, "--backend", args.backend, "--cache-dir", args.cache_dir]
    for name in ("cases", "backend_option"):
        for value in getattr(args, name):
            forwarded += [f"--{name.replace('_', '-')}", value]
    for name in ("trials", "warmup_ms", "min_duration_ms", "min_iterations"):
        if getattr(args, name) is not None:
            forwarded += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    if args.interleave is not None:
        forwarded.append("--interleave" if args.interleave else "--no-interleave")
    merged: dict[str, Any] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="harness-calibrate-") as tmp:
        for i in range(args.runs):
            out = Path(tmp) / f"run{i}.json"
            command = [sys.executable, "-m", "harness.cli", "calibrate", *forwarded, "--worker-out", str(out)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()
                raise HarnessError(f"calibration run {i + 1} failed: {tail[-1] if tail else done.returncode}")
            data = json.loads(out.read_text(encoding="utf-8"))
            if not merged:
                merged = data
            else:
                for key, value in data["trials"].items():
                    merged["trials"][key]["trials"] += value["trials"]
                for key, value in data["ab"].items():
                    for side in ("reference", "candidate"):
                        merged["ab"][key][side] += value[side]
            print(f"  run {i + 1}/{args.runs} ({time.perf_counter() - started:.0f} s)", flush=True)
    return merged


def _saved(m: Any) -> dict[str, Any]:
    return {
        "latency_ms": [round(v, 6) for v in m.latency_ms],
        "wall_ms": m.wall_ms,
        "warmup_ms": m.warmup_ms,
        "cpu_ms": m.cpu_ms,
        "host_busy_ms": m.host_busy_ms,
        "probe_ms": m.probe_ms,
    }


def _evaluate_measured(
    measured: dict[str, Any],
    factors: tuple[float, ...],
    tolerance: float,
    alpha: float,
    use_confirmation: bool,
    trials: int | None = None,
    confirm_in: str = CONFIRM_IN[0],
) -> dict[str, Any]:
    """Figures from saved trials: ``chunk`` trials per run and variant. The first ``trials`` of a run are its gate
    block and the ``trials`` after the middle its confirmation. A/B jobs: ``2 x pairs`` rounds per run and condition, a
    window and its confirmation."""
    from types import SimpleNamespace

    settings = measured["settings"]
    chunk = int(settings["chunk"])
    half = chunk // 2
    block = min(trials or int(settings["trials"]), half)
    blocks: dict[tuple[str, str], TrialSet] = {}
    confirmations: dict[tuple[str, str], TrialSet] = {}
    for key, data in measured["trials"].items():
        case_id, label = key.rsplit("@", 1)
        batch = data["batch_size"]
        ms = _loaded(batch, data["trials"])
        blocks[(case_id, label)] = TrialSet(batch, [m for i, m in enumerate(ms) if i % chunk < block])
        confirmations[(case_id, label)] = TrialSet(
            batch, [m for i, m in enumerate(ms) if 0 <= i % chunk - half < block]
        )
    cases = [SimpleNamespace(id=c) for c in dict.fromkeys(c for c, _ in blocks)]
    spec = SimpleNamespace(**settings["measure"])
    report = evaluate(
        blocks, cases, factors, block, tolerance, alpha, use_confirmation, spec, confirmations, confirm_in
    )
    report["quietest"] = quietest(
        lambda tol, fs: evaluate(
            blocks, cases, fs, block, tol, alpha, use_confirmation, spec, confirmations, confirm_in
        ),
        report,
        tolerance,
        factors,
        aa="1.0",
    )
    if measured.get("ab"):
        jobs: dict[tuple[str, str], tuple[TrialSet, TrialSet]] = {}
        for key, data in measured["ab"].items():
            case_id, label = key.rsplit("@", 1)
            batch = data["batch_size"]
            jobs[(case_id, label)] = (
                TrialSet(batch, _loaded(batch, data["reference"])),
                TrialSet(batch, _loaded(batch, data["candidate"])),
            )
        pairs = int(settings["pairs"])
        report["paired"] = evaluate_paired(jobs, cases, factors, pairs, tolerance, alpha, spec)
        report["paired"]["quietest"] = quietest(
            lambda tol, fs: evaluate_paired(jobs, cases, fs, pairs, tol, alpha, spec),
            report["paired"],
            tolerance,
            factors,
            aa="twin",
        )
    report["settings"] = {
        **settings,
        "trials": block,
        "runs": len(next(iter(blocks.values())).measurements) // block,
        "tolerance": tolerance,
        "alpha": alpha,
        "confirm": use_confirmation,
        "confirm_in": confirm_in,
        "naive_threshold": NAIVE_THRESHOLD,
    }
    return report


def _loaded(batch: int, saved: list[dict[str, Any]]) -> list[Any]:
    """Measurements back from their saved form (:func:`_saved`)."""
    from harness.measure.loop import Measurement

    return [
        Measurement(
            batch,
            t["latency_ms"],
            t["wall_ms"],
            0,
            t["warmup_ms"],
            cpu_ms=t.get("cpu_ms"),
            host_busy_ms=t.get("host_busy_ms"),
            probe_ms=t.get("probe_ms"),
        )
        for t in saved
    ]


def _reevaluate(args: argparse.Namespace, tolerance: float) -> int:
    import json

    try:
        saved = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
        labels = {key.rsplit("@", 1)[1] for key in saved["trials"]}
        factors = tuple(sorted(float(label) for label in labels if label not in ("1.0", "twin")))
        report = _evaluate_measured(
            saved, factors, tolerance, args.alpha, not args.no_confirm, args.trials, args.confirm_in
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HarnessError(f"--from-json {args.from_json}: not a calibration file written by --json ({exc})") from None
    report["elapsed_s"] = saved.get("elapsed_s", 0.0)
    for line in render(report, factors):
        print(line)
    return 0


def _factors(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise HarnessError(f"--factors {text}: expected comma-separated factors such as 1.05,1.10") from None
    if not values or any(v <= 1.0 for v in values):
        raise HarnessError(f"--factors {text}: every factor must be above 1.0, e.g. 1.05 for +5%")
    return values


def _conditions(factors: tuple[float, ...]) -> list[tuple[str, float]]:
    """(label, slowdown factor): the unmodified engine, its twin (a second, identical variant for A/A pairs) and
    one variant per injected slowdown."""
    return [("1.0", 1.0), ("twin", 1.0), *((str(f), f) for f in factors)]


def _opener(engine: Any, feeds: dict[str, Any], factor: float) -> Any:
    def open_runner() -> Any:
        runner = engine.runner(feeds)
        return SlowedRunner(runner, factor) if factor != 1.0 else runner

    return open_runner


def _seconds(ts: TrialSet) -> float:
    """Measuring time of trials: warm-ups, measured loops and the speed probe around each trial (two readings)."""
    return sum(m.warmup_ms + m.wall_ms + 2 * (m.probe_ms or 0.0) for m in ts.measurements) / 1e3


def _other_run(current: int, baseline: int, runs: int) -> int:
    """A run other than the current and the baseline one: where a confirmation in a fresh process is taken from."""
    return next(i for i in ((current + 1) % runs, (current + 2) % runs) if i != baseline)


def _block(ts: TrialSet, index: int, size: int) -> TrialSet:
    return TrialSet(ts.batch_size, ts.measurements[index * size : (index + 1) * size])


def _metrics(ts: TrialSet) -> dict[str, float]:
    return {"latency_median_ms": float(np.median(ts.latency_ms)), "throughput_sps": ts.throughput_sps}


def evaluate(
    sets: dict[tuple[str, str], TrialSet],
    cases: list[Any],
    factors: tuple[float, ...],
    size: int,
    tolerance: float,
    alpha: float,
    use_confirmation: bool,
    spec: Any,
    confirm_sets: dict[tuple[str, str], TrialSet] | None = None,
    confirm_in: str = CONFIRM_IN[0],
) -> dict[str, Any]:
    """Simulated CI comparisons from the measured blocks (see the module docstring); figures per case and overall.
    A block that looks regressed is confirmed by block j of ``confirm_sets`` (measured later in the same run; with
    ``confirm_in`` fresh-process, the confirmation block of another run, neither j nor the baseline's: a new
    process), or else by the next block of ``sets``."""
    conditions = ("1.0", *(str(f) for f in factors))
    per_case: dict[str, dict[str, Tally]] = {}
    gate_seconds: list[float] = []
    single_seconds: list[float] = []
    for case in cases:
        base_set = sets[(case.id, "1.0")]
        blocks = len(base_set.measurements) // size
        per_case[case.id] = {}
        for factor in conditions:
            cur_set = sets[(case.id, factor)]
            tally = Tally()
            for b in range(blocks):
                base = _block(base_set, b, size)
                for j in range(blocks):
                    if j == b:
                        continue
                    cur = _block(cur_set, j, size)
                    first = judge(
                        case.id,
                        _metrics(cur),
                        _metrics(base),
                        {"default": tolerance},
                        trials=cur.per_trial(),
                        baseline_trials=base.per_trial(),
                        alpha=alpha,
                    )
                    verdict = first
                    seconds = _seconds(cur)
                    if use_confirmation and first.verdict == "regressed":
                        if confirm_sets is not None:
                            k = j if confirm_in == "same-process" else _other_run(j, b, blocks)
                            again = _block(confirm_sets[(case.id, factor)], k, size)
                        else:
                            k = next(i for i in ((j + 1) % blocks, (j + 2) % blocks) if i != b)
                            again = _block(cur_set, k, size)
                        second = judge(
                            case.id,
                            _metrics(again),
                            _metrics(base),
                            {"default": tolerance},
                            trials=again.per_trial(),
                            baseline_trials=base.per_trial(),
                            alpha=alpha,
                        )
                        verdict = confirm(first, second)
                        seconds += _seconds(again)
                    gate_seconds.append(seconds)
                    single_seconds.append((spec.warmup_ms + cur.wall_ms) / 1e3)
                    tally.n += 1
                    tally.gate += verdict.verdict == "regressed"
                    tally.ambiguous += verdict.verdict == "ambiguous"
                    tally.naive += naive_regressed(
                        _metrics(cur)["latency_median_ms"], _metrics(base)["latency_median_ms"]
                    )
                    latency = next((c for c in first.comparisons if c.metric == "latency_median_ms"), None)
                    if latency is not None:
                        tally.changes.append(latency.change)
            per_case[case.id][factor] = tally
    overall = {f: Tally() for f in conditions}
    for tallies in per_case.values():
        for f, t in tallies.items():
            overall[f].add(t)
    aa = np.abs(np.asarray(overall["1.0"].changes)) if overall["1.0"].changes else np.zeros(1)
    return {
        "cases": {cid: {f: _figures(t) for f, t in tallies.items()} for cid, tallies in per_case.items()},
        "overall": {f: _figures(t) for f, t in overall.items()},
        "noise_floor_p99": float(np.quantile(aa, 0.99)),
        "gate_seconds_per_case": float(np.mean(gate_seconds)),
        "single_trial_seconds_per_case": float(np.mean(single_seconds)),
        "time_ratio": float(np.mean(gate_seconds) / np.mean(single_seconds)),
    }


def evaluate_paired(
    jobs: dict[tuple[str, str], tuple[TrialSet, TrialSet]],
    cases: list[Any],
    factors: tuple[float, ...],
    pairs: int,
    tolerance: float,
    alpha: float,
    spec: Any,
) -> dict[str, Any]:
    """Interleaved A/B (harness.run.ab): per case and condition, (reference, candidate) trials of one A/B job after
    another, ``2 x pairs`` rounds each: the unmodified engine against its twin (A/A) or a slowed variant, judged on
    the paired ratios of the first ``pairs`` rounds and, when regressed, confirmed by the next ``pairs``."""
    conditions = ("twin", *(str(f) for f in factors))
    per_case: dict[str, dict[str, Tally]] = {}
    seconds: list[float] = []
    single: list[float] = []
    for case in cases:
        per_case[case.id] = {}
        for label in conditions:
            reference, candidate = jobs[(case.id, label)]

            def window(ts: TrialSet, start: int) -> TrialSet:
                return TrialSet(ts.batch_size, ts.measurements[start : start + pairs])

            def verdict_at(
                start: int, candidate: TrialSet = candidate, reference: TrialSet = reference, case_id: str = case.id
            ) -> Any:
                return judge_paired(
                    case_id,
                    window(reference, start).per_trial(),
                    window(candidate, start).per_trial(),
                    {"default": tolerance},
                    alpha=alpha,
                )

            tally = Tally()
            for start in range(0, len(reference.measurements) - 2 * pairs + 1, 2 * pairs):
                verdict = verdict_at(start)
                measured = [window(reference, start), window(candidate, start)]
                if verdict.verdict == "regressed":
                    verdict = confirm(verdict, verdict_at(start + pairs))
                    measured += [window(reference, start + pairs), window(candidate, start + pairs)]
                seconds.append(sum(m.warmup_ms + m.wall_ms for ts in measured for m in ts.measurements) / 1e3)
                single.append((2 * spec.warmup_ms + measured[0].wall_ms + measured[1].wall_ms) / 1e3)
                ref_median = float(np.median(measured[0].latency_ms))
                cand_median = float(np.median(measured[1].latency_ms))
                tally.n += 1
                tally.gate += verdict.verdict == "regressed"
                tally.ambiguous += verdict.verdict == "ambiguous"
                tally.naive += naive_regressed(cand_median, ref_median)
                latency = next((c for c in verdict.comparisons if c.metric == "latency_median_ms"), None)
                if latency is not None:
                    tally.changes.append(latency.change)
            per_case[case.id][label] = tally
    overall = {label: Tally() for label in conditions}
    for tallies in per_case.values():
        for label, t in tallies.items():
            overall[label].add(t)
    return {
        "pairs": pairs,
        "cases": {cid: {f: _figures(t) for f, t in tallies.items()} for cid, tallies in per_case.items()},
        "overall": {f: _figures(t) for f, t in overall.items()},
        "gate_seconds_per_case": float(np.mean(seconds)),
        "single_trial_seconds_per_case": float(np.mean(single)),
        "time_ratio": float(np.mean(seconds) / np.mean(single)),
    }


def quietest(
    evaluate_at: Callable[[float, tuple[float, ...]], dict[str, Any]],
    at_tolerance: dict[str, Any],
    tolerance: float,
    factors: tuple[float, ...],
    aa: str,
) -> dict[str, Any] | None:
    """The smallest tolerance of :data:`TOLERANCE_GRID` whose A/A false alarms meet the target on these very
    measurements, and the detection rate of every injected slowdown there: what a suite's tolerance can be on this
    runner, and what it then catches. ``evaluate_at(tolerance, factors)`` judges the saved trials again (A/A only
    with no factors); ``at_tolerance`` is the evaluation already made at ``tolerance``. None if no tolerance of the
    grid is quiet enough."""
    for tol in TOLERANCE_GRID:
        figures = at_tolerance if abs(tol - tolerance) < 1e-12 else evaluate_at(tol, ())
        aa_figures = figures["overall"][aa]
        if aa_figures["gate_rate"] > TARGETS["false_alarm"]:
            continue
        if figures is not at_tolerance:
            figures = evaluate_at(tol, factors)
        return {
            "tolerance": tol,
            "false_alarms": aa_figures["gate_alarms"],
            "comparisons": aa_figures["comparisons"],
            "detected": {str(f): figures["overall"][str(f)]["gate_rate"] for f in factors},
        }
    return None


def _quietest_line(found: dict[str, Any] | None, factors: tuple[float, ...]) -> str:
    target = f"A/A false alarms <= {TARGETS['false_alarm']:.0%}"
    if found is None:
        return f"quietest tolerance ({target}): none up to {TOLERANCE_GRID[-1]:.0%}"
    detected = ", ".join(f"+{f - 1:.0%} detected {found['detected'][str(f)]:.1%}" for f in factors)
    return (
        f"quietest tolerance ({target}): {found['tolerance']:.0%} "
        f"({found['false_alarms']}/{found['comparisons']} false alarms); there {detected}"
    )


def _figures(t: Tally) -> dict[str, Any]:
    return {
        "comparisons": t.n,
        "gate_alarms": t.gate,
        "gate_rate": t.gate / t.n if t.n else 0.0,
        "gate_ambiguous": t.ambiguous,
        "naive_alarms": t.naive,
        "naive_rate": t.naive / t.n if t.n else 0.0,
        "median_change": float(np.median(t.changes)) if t.changes else 0.0,
    }


def _table(figures: dict[str, Any], conditions: tuple[str, ...], titles: list[str]) -> list[str]:
    header = ["case", *(f"{t} (gate | naive)" for t in titles)]

    def cell(fig: dict[str, Any]) -> str:
        return (
            f"{fig['gate_alarms']}/{fig['comparisons']} {fig['gate_rate']:.1%} | "
            f"{fig['naive_alarms']}/{fig['comparisons']} {fig['naive_rate']:.1%}"
        )

    rows = [[cid, *(cell(figs[c]) for c in conditions)] for cid, figs in figures["cases"].items()]
    rows.append(["overall", *(cell(figures["overall"][c]) for c in conditions)])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def fmt(row: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()

    ambiguous = ", ".join(
        f"{t.split()[0]} {figures['overall'][c]['gate_ambiguous']}/{figures['overall'][c]['comparisons']}"
        for t, c in zip(titles, conditions, strict=True)
    )
    return [
        fmt(header),
        fmt(["-" * w for w in widths]),
        *map(fmt, rows),
        f"ambiguous (flagged, not failing): {ambiguous}",
    ]


def render(report: dict[str, Any], factors: tuple[float, ...]) -> list[str]:
    titles = ["A/A false alarms"] + [f"+{(f - 1):.0%} detected" for f in factors]
    s = report["settings"]
    lines = [
        "",
        f"gate: tolerance {s['tolerance']:.1%}, alpha {s['alpha']}, {s['trials']} trials, "
        f"confirmation {_confirmation(s)};  naive: median:{s['naive_threshold']:.0%} on the same data",
        "",
        f"against a baseline (one run's trials vs another's, as pytest against baselines/; {_layout(s)}):",
        *_table(report, ("1.0", *(str(f) for f in factors)), titles),
        "noise floor: 99% of A/A median-latency changes (as the gate sees them) are within "
        f"+-{report['noise_floor_p99']:.1%}",
        _quietest_line(report.get("quietest"), factors),
        f"measuring time: gate {report['gate_seconds_per_case']:.2f} s per case (trials, warm-ups, confirmations) = "
        f"{report['time_ratio']:.2f}x a single-trial run ({report['single_trial_seconds_per_case']:.2f} s)",
    ]
    if "paired" in report:
        paired = report["paired"]
        lines += [
            "",
            f"interleaved A/B (jobs of {paired['pairs']} pairs, as --ab-base / --ab-backend-option):",
            *_table(paired, ("twin", *(str(f) for f in factors)), titles),
            _quietest_line(paired.get("quietest"), factors),
            f"measuring time: gate {paired['gate_seconds_per_case']:.2f} s per case (both variants, confirmations) = "
            f"{paired['time_ratio']:.2f}x a single-trial run of both ({paired['single_trial_seconds_per_case']:.2f} s)",
        ]
    lines += [
        "",
        f"calibration took {report['elapsed_s']:.0f} s",
        "targets (against a baseline): " + "; ".join(_targets(report, factors)),
    ]
    if "paired" in report:
        lines.append("targets (interleaved A/B): " + "; ".join(_targets(report["paired"], factors, aa="twin")))
    lines.append(verdict_line("baseline", _targets(report, factors)))
    if "paired" in report:
        lines.append(verdict_line("ab", _targets(report["paired"], factors, aa="twin")))
    return lines


def verdict_line(mode: str, targets: list[str]) -> str:
    """One line per mode (``baseline``: against a stored baseline; ``ab``: interleaved A/B) for CI to read:
    ``verdict baseline: met``, or ``verdict baseline: MISSED (A/A false alarms 3.6% > 1%; ...)`` naming each target
    missed, from the ``targets`` items of :func:`_targets`."""
    flipped = {" <= ": " > ", " >= ": " < "}
    missed = []
    for target in (t.removesuffix(" MISSED") for t in targets if t.endswith("MISSED")):
        for sign, opposite in flipped.items():
            target = target.replace(sign, opposite)
        missed.append(target)
    outcome = f"MISSED ({'; '.join(missed)})" if missed else "met"
    return f"verdict {mode}: {outcome}"


def _confirmation(settings: dict[str, Any]) -> str:
    if not settings["confirm"]:
        return "off"
    if settings.get("confirm_in", CONFIRM_IN[0]) == "same-process":
        return "on (same process)"
    return "on (in a fresh process; its start and build are not counted in the measuring time)"


def _layout(settings: dict[str, Any]) -> str:
    # Calibrations saved before the layout was recorded interleaved their trials round by round.
    if settings.get("layout", "interleaved") == "interleaved":
        return "trials interleaved across cases and conditions, as pytest on CPU backends"
    return "a case's trials back to back, as pytest --no-interleave"


def _targets(report: dict[str, Any], factors: tuple[float, ...], aa: str = "1.0") -> list[str]:
    overall = report["overall"]
    out = []
    fa = overall[aa]["gate_rate"]
    ok = "ok" if fa <= TARGETS["false_alarm"] else "MISSED"
    out.append(f"A/A false alarms {fa:.1%} <= {TARGETS['false_alarm']:.0%} {ok}")
    for f, key in ((1.10, "detect_10"), (1.05, "detect_5")):
        label = next((str(x) for x in factors if abs(x - f) < 1e-9), None)
        if label is not None:
            rate = overall[label]["gate_rate"]
            ok = "ok" if rate >= TARGETS[key] else "MISSED"
            out.append(f"+{f - 1:.0%} detected {rate:.1%} >= {TARGETS[key]:.0%} {ok}")
    if "time_ratio" not in report:
        return out
    ratio = report["time_ratio"]
    out.append(
        f"time {ratio:.2f}x <= {TARGETS['time_ratio']:.0f}x {'ok' if ratio <= TARGETS['time_ratio'] else 'MISSED'}"
    )
    return out
