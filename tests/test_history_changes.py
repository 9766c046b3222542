"""Change points in a series (harness.history.changes): a step is found where it happened, noise alone gives none."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from harness.cli.main import main
from harness.history.changes import ChangePoint, candidates, detect, merge
from harness.history.series import Point, Series
from harness.history.store import HistoryStore, run_info
from harness.judge.baselines import BaselineStore
from tests.postgres import postgres_server, postgres_url  # noqa: F401 (fixtures)
from tests.test_history_store import KEY, synthetic_run


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


# -- with a store: SQLite and PostgreSQL, and `harness history detect` / `plot` ---------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.db'}"
    return request.getfixturevalue("postgres_url")


def fill(url, step=0.06, runs=40, keys=None):
    """The example suite's cases over ``runs`` nightly runs, ``step`` from run 25 on; ``keys`` names each run's
    baseline key (default: one key for all)."""
    with HistoryStore(url) as store:
        for i in range(runs):
            results = synthetic_run(i, step_at=25, step=step, key=keys[i] if keys else KEY)
            store.append(results, run_info(results, "import"))


def test_a_step_in_forty_stored_runs_is_found_at_run_25_and_a_steady_store_has_none(store_url, tmp_path):
    fill(store_url)
    with HistoryStore(store_url) as store:
        latency = store.series(metric="latency_median_ms")
    assert len(latency) == 4
    for series in latency:
        (change,) = detect(series)
        assert abs(change.index - 25) <= 1, (series.case_id, change)

    steady = f"sqlite:///{tmp_path / 'steady.db'}"
    fill(steady, step=0.0)
    with HistoryStore(steady) as store:
        assert [detect(s) for s in store.series(metric="latency_median_ms")] == [[]] * 4


def test_history_detect_prints_each_change_and_fails_on_one_newer_than_the_given_commit(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'history.db'}"
    fill(url)

    assert main(["history", "detect", "--history", url, "--case", "resnet50-fp32-b1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3  # latency and throughput, then the count
    assert lines[0].startswith("zoo-cpu resnet50-fp32-b1 latency p50 [cpu-synthetic-2cpu__onnxruntime-1.23.2]: +")
    assert re.search(r"at run 20260102T0[012]0000Z-\w+ \(2026-01-02\), commits 0+\.\.0+, p<0\.001, worse$", lines[0])
    assert lines[1].split(": ")[1].startswith("-") and lines[1].endswith("worse")  # throughput fell
    assert lines[2] == f"2 change point(s) in 2 series of {HistoryStore(url).display}"

    release = f"{20:040x}"  # the commit of run 20, before the step
    assert main(["history", "detect", "--history", url, "--newer-than", release]) == 1
    out = capsys.readouterr().out
    assert out.count("  NEW") == 8 and out.endswith(f"8 newer than {release}\n")
    assert main(["history", "detect", "--history", url, "--newer-than", release[:12]]) == 2
    assert "--newer-than 000000000000: 40 commits in " in capsys.readouterr().err  # the synthetic ones share 36 zeros
    assert main(["history", "detect", "--history", url, "--newer-than", f"{30:040x}"]) == 0
    assert main(["history", "detect", "--history", url, "--newer-than", "2026-01-03"]) == 0
    assert main(["history", "detect", "--history", url, "--newer-than", "2026-01-01"]) == 1
    capsys.readouterr()

    assert main(["history", "detect", "--history", url, "--case", "vgg*", "--newer-than", release]) == 2
    assert capsys.readouterr().err.endswith("matches --case vgg*; harness history show lists them\n")
    assert main(["history", "detect", "--history", url, "--newer-than", "last-tuesday"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("harness history: error: --newer-than last-tuesday: no run id or commit of ")
    assert err.count("\n") == 1


def test_an_improvement_fails_only_when_asked(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'history.db'}"
    fill(url, step=-0.08)
    before = f"{20:040x}"

    assert main(["history", "detect", "--history", url, "--metric", "latency", "--newer-than", before]) == 0
    assert "better  NEW" in capsys.readouterr().out
    args = ["history", "detect", "--history", url, "--metric", "latency", "--newer-than", before, "--fail-on", "any"]
    assert main(args) == 1


def test_a_new_baseline_key_starts_a_new_series_instead_of_a_step(tmp_path, capsys):
    """Runs 0-24 on one machine, 25-39 on a faster one (a new key): two series, no change point."""
    url = f"sqlite:///{tmp_path / 'history.db'}"
    fill(url, step=-0.3, keys=[KEY] * 25 + ["cpu-faster__onnxruntime-1.23.2"] * 15)

    assert main(["history", "detect", "--history", url, "--metric", "latency", "--newer-than", f"{1:040x}"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("0 change point(s) in 8 series")


def test_history_plot_writes_a_trend_per_case_and_metric_with_the_baseline_marked(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'history.db'}"
    fill(url)
    first = synthetic_run(0)
    BaselineStore(tmp_path / "baselines", KEY).update("zoo-cpu", first.cases[:1], first.environment)

    args = ["history", "plot", "--history", url, "--out", str(tmp_path / "trends"), "--case", "resnet50-*"]
    assert main([*args, "--metric", "latency", "--baseline-dir", str(tmp_path / "baselines")]) == 0

    out = capsys.readouterr().out.splitlines()
    pngs = sorted((tmp_path / "trends").glob("*.png"))
    assert len(pngs) == 2 and all(p.read_bytes().startswith(b"\x89PNG") for p in pngs)
    assert out[-1] == f"2 trend plot(s) in {tmp_path / 'trends'}"
    marked = [line for line in out if "baseline marked" in line]
    assert len(marked) == 1 and "resnet50-fp32-b1" in marked[0] and "(40 runs, 1 change point(s)" in marked[0]

    assert main(["history", "plot", "--history", url, "--out", str(tmp_path / "none"), "--case", "vgg*"]) == 1
