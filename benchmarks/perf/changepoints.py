"""How well change-point detection (harness.history.changes) finds steps and drifts in a series, and how often it
raises a false one, next to the previous-point rule of github-action-benchmark.

Each cell is hundreds of synthetic series of 60 runs with multiplicative lognormal noise of 1-4% a run (the per-run
spread the gate calibrations measured), drawn from fixed seeds:

- A/A: no change; every change point found is false.
- step +3%, +5%, +10% at a run drawn uniformly from 10..50: detected when a change point in the step's direction
  lies within 3 runs of it; the position error is |found - true| of the nearest such one; any other is false.
- drift of +0.2% a run from run 20 on (+8% by run 60): detected when a change point lies at run 20 or later.

Besides the whole series, each is analysed night by night as a nightly ``harness history detect --newer-than R``
would see it (the runs so far, from run 11 on), R being the last run before the change (run 10 for A/A): the
share of series whose job fails on some night before run 60 (for A/A: a false alarm), and for steps and drifts the
median number of runs at the new level when it first fails. Only a change in the bad direction fails the job.

The naive rule (github-action-benchmark's ``alert-threshold``) alerts at run i when value[i] > value[i-1] * ratio;
its default is 200%, and 105% is the tightest a user would set. Its alerts are scored as change points; it has no
notion of a level, so in a drift any alert after run 20 counts, noise included (read it beside its A/A row).

    python benchmarks/perf/changepoints.py                    # the table of docs/evidence/change-points.md
    python benchmarks/perf/changepoints.py --grid             # the calibration of max_p, min_change and window
    python benchmarks/perf/changepoints.py --series 100 --noise 0.02

Prints a Markdown table; a few minutes on one core.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from harness.history.changes import MAX_P, MIN_CHANGE, PENALTY, WINDOW, detect
from harness.history.series import Point, Series

RUNS = 60
STEP_RANGE = (10, 50)
NEAR = 3  # runs either side of the true step within which a change point counts as finding it
DRIFT_START, DRIFT_RATE = 20, 0.002
NIGHTLY_FROM = 10  # A/A: the nightly job's reference run (fewer runs than this are no series yet)

Detector = Callable[[np.ndarray], list[tuple[int, float]]]  # values -> (index, relative change) of each change


@dataclass
class Cell:
    """What one scenario at one noise level gave over its series."""

    series: int = 0
    false: int = 0  # change points that match no true change
    series_with_false: int = 0
    detected: int = 0
    errors: list[int] = field(default_factory=list)  # |found - true| of detected steps
    nightly_failed: int = 0  # series whose nightly job failed on some night
    delays: list[int] = field(default_factory=list)  # runs at the new level when the nightly job first failed

    def add(self, found: list[tuple[int, float]], true_at: int | None, up: bool = True, drift: bool = False) -> None:
        self.series += 1
        hits = []
        if true_at is not None:
            if drift:
                hits = [(i, c) for i, c in found if i >= true_at and (c > 0) == up]
            else:
                hits = [(i, c) for i, c in found if abs(i - true_at) <= NEAR and (c > 0) == up]
        if hits:
            self.detected += 1
            if not drift:
                self.errors.append(min(abs(i - true_at) for i, _ in hits))  # type: ignore[operator]
        false = len(found) - (1 if hits and not drift else len(hits))
        self.false += false
        self.series_with_false += false > 0


def series_of(values: np.ndarray) -> Series:
    points = tuple(Point(f"run-{i}", f"{i:04d}", f"c{i}", "main", float(v)) for i, v in enumerate(values))
    return Series("synthetic", "case", "latency_median_ms", "key", points)


def harness_detector(max_p: float, min_change: float, window: int, penalty: float = PENALTY) -> Detector:
    def run(values: np.ndarray) -> list[tuple[int, float]]:
        found = detect(series_of(values), max_p=max_p, min_change=min_change, window=window, penalty=penalty)
        return [(c.index, c.change) for c in found]

    return run


def naive_detector(ratio: float) -> Detector:
    """github-action-benchmark: alert when the current run is worse than the previous one by more than ``ratio``."""

    def run(values: np.ndarray) -> list[tuple[int, float]]:
        rel = values[1:] / values[:-1]
        return [(i + 1, float(r - 1)) for i, r in enumerate(rel) if r > ratio]

    return run


def noise(rng: np.random.Generator, sigma: float) -> np.ndarray:
    return np.exp(rng.normal(0.0, sigma, RUNS))


def scenario(name: str, sigma: float, series: int, seed: int) -> list[tuple[np.ndarray, int | None]]:
    """The series of one cell, each with the run its change starts at (None for A/A); the same for every detector."""
    rng = np.random.default_rng([seed, round(sigma * 1e4), hash_name(name)])
    cases: list[tuple[np.ndarray, int | None]] = []
    for _ in range(series):
        values = 10.0 * noise(rng, sigma)
        if name == "A/A":
            cases.append((values, None))
        elif name.startswith("step"):
            at = int(rng.integers(STEP_RANGE[0], STEP_RANGE[1] + 1))
            values[at:] *= 1 + float(name.split("+")[1].rstrip("%")) / 100
            cases.append((values, at))
        else:
            ramp = np.maximum(np.arange(RUNS) - DRIFT_START + 1, 0) * DRIFT_RATE
            cases.append((values * (1 + ramp), DRIFT_START))
    return cases


def hash_name(name: str) -> int:
    return sum(ord(ch) * 31**i for i, ch in enumerate(name)) % 2**31  # stable across processes, unlike hash()


def first_night(detector: Detector, values: np.ndarray, since: int) -> int | None:
    """How many runs from run ``since`` on the store held on the first night a check of the runs so far found a
    worse change at or after ``since`` (None: no night did)."""
    for n in range(since + 1, RUNS + 1):
        if any(i >= since and c > 0 for i, c in detector(values[:n])):
            return n - since
    return None


# The threshold sets --grid tries: PELT's penalty, the t-test's p-value, the minimum change, the window.
GRID = [
    (1.0, 0.001, MIN_CHANGE, 30),
    (2.0, 0.001, MIN_CHANGE, 30),
    (3.0, 0.001, MIN_CHANGE, 30),
    *itertools.product((1.0, 2.0, 3.0, 4.0), (0.0001,), (MIN_CHANGE,), (30,)),
    *itertools.product((PENALTY,), (MAX_P,), (MIN_CHANGE,), (15, 60)),
]

SCENARIOS = ("A/A", "step +3%", "step +5%", "step +10%", "drift +0.2%/run")


def evaluate(detector: Detector, sigma: float, series: int, seed: int, nightly: bool) -> dict[str, Cell]:
    cells = {}
    for name in SCENARIOS:
        cell = Cell()
        drift = name.startswith("drift")
        for values, at in scenario(name, sigma, series, seed):
            cell.add(detector(values), at, drift=drift)
            if nightly:
                delay = first_night(detector, values, NIGHTLY_FROM if at is None else at)
                cell.nightly_failed += delay is not None
                if delay is not None and at is not None:
                    cell.delays.append(delay)
        cells[name] = cell
    return cells


def describe(name: str, cell: Cell) -> tuple[str, str, str, str]:
    """(false change points a series, detection, position error, nightly job) as table cells."""
    false = f"{cell.false / cell.series:.2f} ({cell.series_with_false / cell.series:.0%})"
    failed = f"{cell.nightly_failed / cell.series:.0%}"
    if cell.delays:
        failed += f", after {np.median(cell.delays):.0f} runs"
    if name == "A/A":
        return false, "", "", failed
    rate = f"{cell.detected / cell.series:.0%}"
    where = f"{np.mean(cell.errors):.2f} / {np.percentile(cell.errors, 90):.0f}" if cell.errors else "-"
    return false, rate, where, failed


def table(detectors: dict[str, Detector], sigmas: Sequence[float], series: int, seed: int, nightly: bool) -> None:
    print(
        "| detector | noise | scenario | false change points a series (series with any) | detected | "
        "position error, runs: mean / p90 | nightly job failed (median runs at the new level) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for (label, detector), sigma in itertools.product(detectors.items(), sigmas):
        for name, cell in evaluate(detector, sigma, series, seed, nightly).items():
            false, rate, where, failed = describe(name, cell)
            print(f"| {label} | {sigma:.0%} | {name} | {false} | {rate} | {where} | {failed} |", flush=True)


def grid(sigmas: Sequence[float], series: int, seed: int) -> None:
    """One line per threshold set and noise level: A/A false change points a series and the share of A/A series
    whose nightly job failed some night; the share of +3% and +5% steps found in the whole series, and of +5% steps
    the nightly job caught by run 60."""
    print("| penalty | max_p | min_change | window | noise | A/A false a series | A/A nightly failed | +3% found | "
          "+5% found | +5% nightly caught |")  # fmt: skip
    print("|" + " --- |" * 10)
    for (penalty, max_p, min_change, window), sigma in itertools.product(GRID, sigmas):
        detector = harness_detector(max_p, min_change, window, penalty)
        cells = {name: Cell() for name in SCENARIOS[:3]}
        for name in SCENARIOS[:3]:
            for values, at in scenario(name, sigma, series, seed):
                cells[name].add(detector(values), at)
                if name != "step +3%":
                    cells[name].nightly_failed += first_night(detector, values, at or NIGHTLY_FROM) is not None
        aa, three, five = (cells[name] for name in SCENARIOS[:3])
        print(
            f"| {penalty:g} | {max_p:g} | {min_change:.0%} | {window} | {sigma:.0%} | {aa.false / series:.3f} | "
            f"{aa.nightly_failed / series:.1%} | {three.detected / series:.0%} | {five.detected / series:.0%} | "
            f"{five.nightly_failed / series:.0%} |",
            flush=True,
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=400, help="series per cell (default 400)")
    parser.add_argument(
        "--noise",
        type=float,
        nargs="+",
        default=[0.01, 0.02, 0.04],
        help="per-run noise, a fraction (default 0.01 0.02 0.04)",
    )
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--grid", action="store_true", help="calibrate: A/A and +3%%/+5%% over threshold sets")
    parser.add_argument("--no-nightly", action="store_true", help="skip the nightly view (50 checks a series)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.grid:
        grid(args.noise, args.series, args.seed)
    else:
        detectors = {
            f"harness (p<{MAX_P:g}, >={MIN_CHANGE:.0%}, window {WINDOW})": harness_detector(MAX_P, MIN_CHANGE, WINDOW),
            "previous point, 200%": naive_detector(2.0),
            "previous point, 105%": naive_detector(1.05),
        }
        table(detectors, args.noise, args.series, args.seed, nightly=not args.no_nightly)
    print(
        f"\n{args.series} series a cell, {RUNS} runs each, seed {args.seed}; {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
