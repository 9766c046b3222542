"""The run's orchestration with a scripted backend: measurement rules, persistence, Ctrl-C."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from harness.backends import base
from harness.backends.base import BuildInfo
from harness.measure.loop import measure
from harness.run.session import HarnessSession, RunConfig
from harness.suite.schema import MeasureSpec, load_suite


class SleepRunner:
    """Each step sleeps ``delay_s``; the ``interrupt_after``-th step raises KeyboardInterrupt like Ctrl-C."""

    def __init__(self, delay_s: float, interrupt_after: int | None = None) -> None:
        self.delay_s, self.interrupt_after, self.steps = delay_s, interrupt_after, 0

    def step(self) -> dict[str, float]:
        self.steps += 1
        if self.interrupt_after is not None and self.steps >= self.interrupt_after:
            raise KeyboardInterrupt
        time.sleep(self.delay_s)
        return {"device_ms": self.delay_s * 1e3}

    def outputs(self) -> dict:
        return {}

    def close(self) -> None:
        pass


class ScriptedBackend:
    name = "scripted"
    precisions = frozenset({"fp32"})
    interrupt_model: str | None = None

    def version(self) -> str:
        return "1.0"

    def settings(self) -> dict:
        return {}

    def build(self, model, case):
        interrupt = 3 if case.model.name == self.interrupt_model else None
        engine = type("E", (), {})()
        engine.build = BuildInfo(build_time_ms=1.0, engine_bytes=10)
        engine.runner = lambda feeds: SleepRunner(0.002, interrupt)
        return engine


def create(options: dict) -> ScriptedBackend:
    return ScriptedBackend()


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> type[ScriptedBackend]:
    monkeypatch.setitem(base.REGISTRY, "scripted", f"{__name__}:create")
    monkeypatch.setattr(ScriptedBackend, "interrupt_model", None)
    return ScriptedBackend


def test_measure_meets_both_minimums_and_keeps_every_sample():
    runner = SleepRunner(0.002)
    by_count = measure(runner, MeasureSpec(warmup_ms=10, min_duration_ms=1, min_iterations=15), batch_size=4)
    assert by_count.iterations == 15 and len(by_count.extra_ms["device_ms"]) == 15
    assert by_count.warmup_iterations >= 1 and by_count.warmup_ms >= 10
    by_time = measure(runner, MeasureSpec(warmup_ms=0, min_duration_ms=60, min_iterations=2), batch_size=4)
    assert by_time.wall_ms >= 60 and by_time.iterations > 2
    assert all(v >= 2.0 for v in by_time.latency_ms)
    expected = 4 * by_time.iterations / (by_time.wall_ms / 1e3)
    assert by_time.throughput_sps == pytest.approx(expected)


def test_high_cv_is_warned_about():
    m = measure(SleepRunner(0.001), MeasureSpec(warmup_ms=0, min_duration_ms=0, min_iterations=3), 1)
    m.latency_ms = [1.0, 1.0, 2.0]
    assert any("CV" in w for w in m.warnings())
    m.latency_ms = [1.0, 1.0, 1.0]
    assert m.warnings() == []


def test_ctrl_c_keeps_finished_cases_and_baselines_whole(tmp_path: Path, scripted):
    suite_file = tmp_path / "s.yaml"
    suite_file.write_text(
        "suite: s\nmodels:\n  - name: a\n    onnx_zoo: light_squeezenet\n"
        "  - name: b\n    onnx_zoo: light_squeezenet\n"
        "measure: {warmup_ms: 0, min_duration_ms: 10, min_iterations: 3}\n"
    )
    suite = load_suite(suite_file)
    session = HarnessSession(
        RunConfig(
            backend="scripted",
            baseline_dir=tmp_path / "bl",
            report_dir=tmp_path / "r",
            cache_dir=tmp_path / "c",
            update_baselines=True,
        )
    )
    scripted.interrupt_model = "b"
    first, second = suite.cases()
    assert session.run_case(first).status == "passed"
    with pytest.raises(KeyboardInterrupt):
        session.run_case(second)
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    assert [c["id"] for c in data["cases"]] == ["a-fp32-b1"]
    stored = json.loads(next((tmp_path / "bl").glob("*/s.json")).read_text())
    assert list(stored["cases"]) == ["a-fp32-b1"]
    assert not list(tmp_path.rglob("*.tmp"))
