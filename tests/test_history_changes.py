"""Change points in a series (harness.history.changes): a step is found where it happened, noise alone gives none."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.history.changes import ChangePoint, candidates, detect, merge
from harness.history.series import Point, Series


def series_of(values, metric="latency_median_ms", key="cpu-ort-1.20", commits=True) -> Series:
    points = tuple(
        Point(
            f"run-{i:02d}",
            f"2026-01-{1 + i // 24:02d}T{i % 24:02d}:00:00+00:00",
            f"c{i:02d}" if commits else None,
            "main",
            float(v),
        )
        for i, v in enumerate(values)
    )
    return Series("zoo-cpu", "resnet50-fp32-b1", metric, key, points)


def noisy(seed: int, runs: int, sigma: float, level: float = 5.0) -> np.ndarray:
    return level * np.exp(np.random.default_rng(seed).normal(0.0, sigma, runs))


@pytest.mark.parametrize("seed", range(8))
def test_a_six_percent_step_at_run_25_of_40_is_found_there(seed):
    values = noisy(seed, 40, 0.02)
    values[25:] *= 1.06

    found = detect(series_of(values))

    assert len(found) == 1, found
    change = found[0]
    assert abs(change.index - 25) <= 1
    assert change.run_id == f"run-{change.index:02d}"
    assert change.commit_before == f"c{change.index - 1:02d}" and change.commit == f"c{change.index:02d}"
    assert change.commits == f"c{change.index - 1:02d}..c{change.index:02d}"
    assert 0.03 < change.change < 0.09
    assert change.after / change.before - 1 == pytest.approx(change.change)
    assert change.p_value < 0.001
    assert change.worse  # latency went up


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(("runs", "sigma"), [(40, 0.02), (60, 0.01), (60, 0.04)])
def test_noise_alone_gives_no_change_point(seed, runs, sigma):
    assert detect(series_of(noisy(seed, runs, sigma))) == []


def test_a_faster_latency_is_a_change_but_not_worse_and_a_throughput_drop_is_worse():
    values = noisy(1, 40, 0.02)
    values[20:] *= 0.9

    (latency,) = detect(series_of(values))
    (throughput,) = detect(series_of(values, metric="throughput_sps"))

    assert latency.change < 0 and not latency.worse
    assert throughput.change < 0 and throughput.worse


def test_two_steps_are_two_change_points_in_order():
    values = noisy(2, 60, 0.015)
    values[20:] *= 1.10
    values[45:] *= 0.95

    found = detect(series_of(values))

    assert len(found) == 2
    assert [abs(c.index - at) <= 1 for c, at in zip(found, (20, 45), strict=True)] == [True, True]
    assert found[0].change > 0 > found[1].change


def test_a_slow_drift_is_found_after_it_began():
    runs = np.arange(60)
    values = noisy(3, 60, 0.01) * (1 + 0.004 * np.maximum(runs - 20, 0))

    found = detect(series_of(values))

    assert found, "a +16% drift over 40 runs went unnoticed"
    assert all(c.index >= 20 and c.worse for c in found)


def test_a_new_baseline_key_is_another_series_not_a_step():
    """The same case measured on a faster machine from run 20 on: split by key there is no change; had the store
    joined the two, the move to the new machine would read as a 30% improvement."""
    old, new = noisy(4, 20, 0.02), noisy(5, 20, 0.02, level=3.5)

    assert detect(series_of(old, key="cpu-a")) == []
    assert detect(series_of(new, key="cpu-b")) == []
    (joined,) = detect(series_of(np.concatenate([old, new])))
    assert joined.index == 20 and joined.change == pytest.approx(-0.3, abs=0.05)


def test_failed_runs_are_left_out_and_indices_stay_positions_in_the_series():
    values = list(noisy(6, 40, 0.02))
    for i in range(25, 40):
        values[i] *= 1.08
    values[10] = math.nan
    values[30] = 0.0

    (change,) = detect(series_of(values))

    assert abs(change.index - 25) <= 1
    assert change.run_id == f"run-{change.index:02d}"


def test_a_constant_metric_that_steps_once_is_certain_and_a_constant_one_has_none():
    size = [10_000_000.0] * 15 + [12_000_000.0] * 10

    (change,) = detect(series_of(size, metric="engine_bytes"))

    assert change.index == 15 and change.p_value == 0.0 and change.change == pytest.approx(0.2)
    assert detect(series_of([10_000_000.0] * 25, metric="engine_bytes")) == []


def test_too_short_a_series_has_no_change_points_and_runs_without_commits_say_so():
    assert detect(series_of([1.0, 2.0, 2.0])) == []
    (change,) = detect(series_of([1.0] * 5 + [2.0] * 5, commits=False))
    assert change.commits == "?..?"


def test_thresholds_decide_a_small_step():
    """A +2% step on 1% noise: found at the default thresholds, gone when the minimum size is 3% or the p-value
    must be below 1e-20."""
    values = noisy(7, 60, 0.01)
    values[30:] *= 1.02

    assert [abs(c.index - 30) <= 2 for c in detect(series_of(values))] == [True]
    assert detect(series_of(values), min_change=0.03) == []
    assert detect(series_of(values), max_p=1e-20) == []


def test_the_merge_pass_removes_the_candidates_noise_proposed():
    logs = list(np.log(noisy(8, 60, 0.03)))
    proposed = [*candidates(logs), 15, 40]

    assert merge(logs, proposed, max_p=0.001, min_change=0.01, window=30) == []


def test_change_point_is_a_frozen_record():
    change = ChangePoint(3, "r", "t", None, "abc", 1.0, 1.1, 0.1, 0.01, True)
    with pytest.raises(AttributeError):
        change.index = 4  # type: ignore[misc]
