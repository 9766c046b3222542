"""The GPU gate against stored baselines: every runner re-draws its device-memory layout, so a case's trials sample
the per-process offset that separates a baseline from a run (docs/evidence/gpu-gate-h200.md), and ``harness
calibrate`` states its verdict per mode in one line. The GPU parts run here through stand-ins that record calls."""

from __future__ import annotations

import types

import numpy as np
import pytest
from test_tensorrt_run import FEEDS, FakeBackend, FakeCuda, FakeEngine, fake_trt

from harness import cuda
from harness.backends import tensorrt_runner
from harness.backends import torch as torch_backend
from harness.calibrate import TARGETS, render, verdict_line


def test_placement_is_a_random_whole_number_of_pages_up_to_256_mib():
    draws = [cuda.placement_bytes(np.random.default_rng(seed)) for seed in range(200)]
    assert all(d % (2 * 2**20) == 0 and 2 * 2**20 <= d <= 256 * 2**20 for d in draws)
    assert len(set(draws)) > 50  # layouts differ from trial to trial
    unseeded = {cuda.placement_bytes() for _ in range(20)}
    assert len(unseeded) > 1  # unseeded: each runner draws anew


class FakeTorch:
    """Records the allocator calls the torch runner makes before it allocates its own buffers."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.cuda = types.SimpleNamespace(
            synchronize=lambda device: self.calls.append(("synchronize", device)),
            empty_cache=lambda: self.calls.append(("empty_cache", None)),
        )
        self.uint8 = "uint8"

    def empty(self, nbytes: int, dtype: object, device: object) -> tuple[int, object]:
        self.calls.append(("empty", nbytes))
        return nbytes, device


def test_a_torch_runner_returns_cached_blocks_and_holds_a_random_ballast(monkeypatch):
    fake = FakeTorch()
    monkeypatch.setattr(cuda, "placement_bytes", lambda: 6 * 2**20)
    ballast = torch_backend._ballast(fake, "cuda:0")
    # the allocator's free blocks go back to the driver first, so the ballast and what follows are fresh mappings
    assert [name for name, _ in fake.calls] == ["synchronize", "empty_cache", "empty"]
    assert ballast == (6 * 2**20, "cuda:0")


class CountingCuda(FakeCuda):
    """FakeCuda whose device buffers remember their size and whether they were freed."""

    def __init__(self) -> None:
        super().__init__()
        base = self.DeviceBuffer
        self.buffers: list[object] = []
        outer = self

        class DeviceBuffer(base):  # type: ignore[misc, valid-type]
            def __init__(self, nbytes: int) -> None:
                super().__init__(nbytes)
                self.closed = False
                outer.buffers.append(self)

            def close(self) -> None:
                self.closed = True

        self.DeviceBuffer = DeviceBuffer


def test_a_tensorrt_runner_allocates_its_buffers_after_a_random_ballast_and_frees_it(monkeypatch, tmp_path):
    fake = CountingCuda()
    monkeypatch.setattr(tensorrt_runner, "cuda", fake)
    monkeypatch.setattr(tensorrt_runner, "trt", fake_trt(fake.clock))
    monkeypatch.setattr("harness.backends.tensorrt._logger", lambda: None)
    sizes = iter([10 * 2**20, 40 * 2**20])
    monkeypatch.setattr(tensorrt_runner, "placement_bytes", lambda: next(sizes))
    for expected in (10 * 2**20, 40 * 2**20):
        fake.buffers.clear()
        runner = tensorrt_runner.TensorRTRunner(FakeEngine(FakeBackend(tmp_path)), FEEDS)
        ballast = fake.buffers[0]
        assert ballast.nbytes == expected  # type: ignore[attr-defined]
        assert len(fake.buffers) > 1  # the I/O buffers came after it
        assert not ballast.closed  # type: ignore[attr-defined]  # held while the runner measures
        runner.close()
        assert all(b.closed for b in fake.buffers)  # type: ignore[attr-defined]


def test_the_verdict_line_names_each_missed_target_with_the_right_sign():
    assert (
        verdict_line("baseline", ["A/A false alarms 0.0% <= 1% ok", "time 1.90x <= 3x ok"]) == "verdict baseline: met"
    )
    line = verdict_line(
        "baseline",
        ["A/A false alarms 3.6% <= 1% MISSED", "+10% detected 100.0% >= 99% ok", "+5% detected 83.0% >= 90% MISSED"],
    )
    assert line == "verdict baseline: MISSED (A/A false alarms 3.6% > 1%; +5% detected 83.0% < 90%)"


def _figures(rate: float, n: int = 100) -> dict[str, object]:
    alarms = round(rate * n)
    return {
        "comparisons": n,
        "gate_alarms": alarms,
        "gate_rate": alarms / n,
        "gate_ambiguous": 0,
        "naive_alarms": 0,
        "naive_rate": 0.0,
        "median_change": 0.0,
    }


@pytest.mark.parametrize(
    ("aa", "detect_5", "expected"),
    [
        (0.0, 0.95, "verdict baseline: met"),
        (0.03, 0.95, "verdict baseline: MISSED (A/A false alarms 3.0% > 1%)"),
        (0.0, 0.85, "verdict baseline: MISSED (+5% detected 85.0% < 90%)"),
    ],
)
def test_calibrate_prints_one_verdict_line_per_mode_against_the_issue_targets(aa, detect_5, expected):
    assert TARGETS == {"false_alarm": 0.01, "detect_10": 0.99, "detect_5": 0.90, "time_ratio": 3.0}
    overall = {"1.0": _figures(aa), "1.05": _figures(detect_5), "1.1": _figures(1.0)}
    paired = {"twin": _figures(0.0), "1.05": _figures(1.0), "1.1": _figures(1.0)}
    report = {
        "settings": {"tolerance": 0.02, "alpha": 0.05, "trials": 3, "confirm": True, "naive_threshold": 0.05},
        "cases": {"case-a": overall},
        "overall": overall,
        "noise_floor_p99": 0.02,
        "gate_seconds_per_case": 2.0,
        "single_trial_seconds_per_case": 1.0,
        "time_ratio": 2.0,
        "elapsed_s": 10.0,
        "paired": {
            "pairs": 6,
            "cases": {"case-a": paired},
            "overall": paired,
            "gate_seconds_per_case": 2.0,
            "single_trial_seconds_per_case": 1.0,
            "time_ratio": 2.0,
        },
    }
    lines = render(report, (1.05, 1.10))
    verdicts = [line for line in lines if line.startswith("verdict ")]
    assert verdicts == [expected, "verdict ab: met"]
