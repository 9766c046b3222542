"""Figures of a calibration from saved trials: how often the gate (and the naive rule beside it) cries wolf and
how often it catches an injected slowdown, in simulated CI comparisons.

- Against a baseline: every ordered pair of distinct runs (baseline block from the unmodified condition of one run,
  current block from the condition under test in another) is one CI comparison, judged by the gate
  (harness.judge.gate.judge, confirmation included) and by the naive rule (pytest-benchmark's
  ``--benchmark-compare-fail=median:5%``: the median latency of all samples of the current block against that of
  the baseline block) on the very same measurements. With ``confirm_in`` fresh-process a block's confirmation comes
  from a third run instead of its own: on a GPU every process keeps its own level (docs/evidence/gpu-gate-h200.md),
  which a confirmation in the same process confirms and one in a new process does not.
- Interleaved A/B: every A/B job, the unmodified engine against its twin (A/A) or a slowed variant, judged on the
  paired ratios (harness.judge.gate.judge_paired), next to the naive rule on the same trials.

A/A comparisons give the false-alarm rate, the injected conditions the detection rate. For each mode
:func:`quietest` finds the smallest tolerance of :data:`TOLERANCE_GRID` whose A/A false alarms meet the target, judged
again on the same trials. Comparisons that share runs are not independent, so the rates are estimates with wider
error than their count suggests. Measuring time is the gate's time per case (trials, warm-ups, speed probes,
confirmations) over that of a single-trial run of the same length (one warm-up, one measured loop); for A/B, both
variants' time over a single-trial run of each.

Everything here works on saved measurements (:func:`save_trial` / :func:`load_trials`, the form ``--json`` writes),
so ``--from-json`` re-evaluates a calibration without measuring.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np

from harness.core.errors import HarnessError
from harness.core.measurement import Measurement
from harness.judge.gate import NAIVE_THRESHOLD, confirm, judge, judge_paired, naive_regressed
from harness.measure.trials import TrialSet

TARGETS = {"false_alarm": 0.01, "detect_10": 0.99, "detect_5": 0.90, "time_ratio": 3.0}
# Where a confirmation is measured: in the run's own process right after its trials, or in another process; auto
# does what the gate does (harness.run.fresh): another process on GPU backends.
CONFIRM_IN = ("auto", "same-process", "fresh-process")
# Tolerances tried for the quietest one this runner supports (:func:`quietest`): the suites' usual settings.
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


def save_trial(m: Measurement) -> dict[str, Any]:
    """One trial's measurement as ``--json`` saves it: what the evaluation reads back, nothing of the machine."""
    return {
        "latency_ms": [round(v, 6) for v in m.latency_ms],
        "wall_ms": m.wall_ms,
        "warmup_ms": m.warmup_ms,
        "cpu_ms": m.cpu_ms,
        "host_busy_ms": m.host_busy_ms,
        "probe_ms": m.probe_ms,
    }


def load_trials(batch: int, saved: list[dict[str, Any]]) -> list[Measurement]:
    """Measurements back from their saved form (:func:`save_trial`)."""
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


def evaluate_measured(
    measured: dict[str, Any],
    factors: tuple[float, ...],
    tolerance: float,
    alpha: float,
    use_confirmation: bool,
    trials: int | None = None,
    confirm_in: str = CONFIRM_IN[0],
    baseline_processes: int = 1,
) -> dict[str, Any]:
    """Figures from saved trials: ``chunk`` trials per run and variant. The first ``trials`` of a run are its gate
    block and the ``trials`` after the middle its confirmation. A/B jobs: ``2 x pairs`` rounds per run and condition, a
    window and its confirmation. ``baseline_processes``: how many runs a baseline pools, as the gate records it from
    that many processes (harness.run.fresh)."""
    settings = measured["settings"]
    if confirm_in == "auto":
        confirm_in = "fresh-process" if settings.get("uses_gpu") else "same-process"
    chunk = int(settings["chunk"])
    half = chunk // 2
    block = min(trials or int(settings["trials"]), half)
    blocks: dict[tuple[str, str], TrialSet] = {}
    confirmations: dict[tuple[str, str], TrialSet] = {}
    for key, data in measured["trials"].items():
        case_id, label = key.rsplit("@", 1)
        batch = data["batch_size"]
        ms = load_trials(batch, data["trials"])
        blocks[(case_id, label)] = TrialSet(batch, [m for i, m in enumerate(ms) if i % chunk < block])
        confirmations[(case_id, label)] = TrialSet(
            batch, [m for i, m in enumerate(ms) if 0 <= i % chunk - half < block]
        )
    cases = [SimpleNamespace(id=c) for c in dict.fromkeys(c for c, _ in blocks)]
    spec = SimpleNamespace(**settings["measure"])

    def evaluate_at(tol: float, fs: tuple[float, ...]) -> dict[str, Any]:
        return evaluate(
            blocks, cases, fs, block, tol, alpha, use_confirmation, spec, confirmations, confirm_in, baseline_processes
        )

    report = evaluate_at(tolerance, factors)
    report["quietest"] = quietest(
        evaluate_at,
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
                TrialSet(batch, load_trials(batch, data["reference"])),
                TrialSet(batch, load_trials(batch, data["candidate"])),
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
        "baseline_processes": baseline_processes,
        "naive_threshold": NAIVE_THRESHOLD,
    }
    return report


def evaluate(
    sets: dict[tuple[str, str], TrialSet],
    cases: list[Any],
    factors: tuple[float, ...],
    size: int,
    tolerance: float,
    alpha: float,
    use_confirmation: bool,
    spec: Any,
    confirm_sets: dict[tuple[str, str], TrialSet],
    confirm_in: str = "same-process",
    baseline_runs: int = 1,
) -> dict[str, Any]:
    """Simulated CI comparisons from the measured blocks (see the module docstring); figures per case and overall.
    The baseline is the unmodified blocks of ``baseline_runs`` runs pooled (every combination of that many runs), as
    a baseline recorded from that many processes holds them; the current block comes from a run outside it. A block
    that looks regressed is confirmed by block j of ``confirm_sets`` (measured later in the same run; with
    ``confirm_in`` fresh-process, both blocks of another run, neither j nor one of the baseline's: a new process,
    which measures twice the gate's trials, harness.run.fresh)."""
    conditions = ("1.0", *(str(f) for f in factors))
    per_case: dict[str, dict[str, Tally]] = {}
    gate_seconds: list[float] = []
    single_seconds: list[float] = []
    for case in cases:
        base_set = sets[(case.id, "1.0")]
        blocks = len(base_set.measurements) // size
        # a baseline's runs, a current one and, confirmed in a new process, one more
        needed = baseline_runs + 1 + (use_confirmation and confirm_in == "fresh-process")
        if blocks < needed:
            raise HarnessError(
                f"{blocks} runs cannot hold a baseline of {baseline_runs}, a current run and its confirmation; "
                f"give --runs {needed} or more (more for useful rates), or fewer --baseline-processes"
            )
        per_case[case.id] = {}
        for factor in conditions:
            cur_set = sets[(case.id, factor)]
            tally = Tally()
            for recorded in itertools.combinations(range(blocks), baseline_runs):
                base = TrialSet(
                    base_set.batch_size, [m for b in recorded for m in _block(base_set, b, size).measurements]
                )
                for j in range(blocks):
                    if j in recorded:
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
                        if confirm_in == "same-process":
                            again = _block(confirm_sets[(case.id, factor)], j, size)
                        else:  # all the trials another run's process measured: 2 x size
                            k = _other_run(j, recorded, blocks)
                            again = TrialSet(
                                cur_set.batch_size,
                                _block(cur_set, k, size).measurements
                                + _block(confirm_sets[(case.id, factor)], k, size).measurements,
                            )
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


def _seconds(ts: TrialSet) -> float:
    """Measuring time of trials: warm-ups, measured loops and the speed probe around each trial (two readings)."""
    return sum(m.warmup_ms + m.wall_ms + 2 * (m.probe_ms or 0.0) for m in ts.measurements) / 1e3


def _other_run(current: int, recorded: tuple[int, ...], runs: int) -> int:
    """The next run after the current one that recorded no part of the baseline: where a confirmation in another
    process is taken from."""
    return next(i % runs for i in range(current + 1, current + runs) if i % runs not in recorded)


def _block(ts: TrialSet, index: int, size: int) -> TrialSet:
    return TrialSet(ts.batch_size, ts.measurements[index * size : (index + 1) * size])


def _metrics(ts: TrialSet) -> dict[str, float]:
    return {"latency_median_ms": float(np.median(ts.latency_ms)), "throughput_sps": ts.throughput_sps}
