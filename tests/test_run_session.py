"""The run's orchestration with a scripted backend: measurement rules, persistence, Ctrl-C."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.backends import base
from harness.backends.base import BackendBase, BackendContext, BuildInfo, RunnerBase
from harness.core.results import CaseResult
from harness.measure.loop import measure
from harness.measure.trials import SlowedRunner
from harness.run.config import ABConfig, RunConfig
from harness.run.session import HarnessSession
from harness.run.start import open_session
from harness.suite.load import load_suite
from harness.suite.schema import MeasureSpec


class SleepRunner(RunnerBase):
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


class ScriptedBackend(BackendBase):
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


def create(options: dict, context: BackendContext) -> ScriptedBackend:
    return ScriptedBackend(context)


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


def test_the_session_module_does_not_import_ab_mode():
    """A/B mode builds on the session (harness.run.ab imports harness.run.session), never the other way round."""
    code = "import sys, harness.run.session; print('harness.run.ab' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_open_session_picks_ab_mode_when_its_options_are_given(tmp_path: Path):
    from harness.run.ab import ABSession

    plain = open_session(RunConfig(report_dir=tmp_path))
    assert type(plain) is HarnessSession
    ab = open_session(RunConfig(report_dir=tmp_path, ab=ABConfig(backend_options={"intra_op_threads": 2})))
    assert isinstance(ab, ABSession) and ab.ab.backend_options == {"intra_op_threads": 2}


def test_open_runner_slows_down_by_the_factor_given_or_by_the_selection(tmp_path: Path, scripted):
    suite_file = tmp_path / "s.yaml"
    suite_file.write_text("suite: s\nmodels:\n  - name: a\n    onnx_zoo: light_squeezenet\n")
    (case,) = load_suite(suite_file).cases()
    session = HarnessSession(RunConfig(backend="scripted", report_dir=tmp_path / "r", cache_dir=tmp_path / "c",
                                       slowdown=1.5, slowdown_cases=("other-*",)))  # fmt: skip
    engine, feeds = session.build_case(case, session.backend_for(case.suite), CaseResult(id=case.id, params={}))
    assert not isinstance(session.open_runner(case, engine, feeds), SlowedRunner)  # not selected
    slowed = session.open_runner(case, engine, feeds, slowdown=2.0)
    assert isinstance(slowed, SlowedRunner) and slowed.factor == 2.0
    assert not isinstance(session.open_runner(case, engine, feeds, slowdown=1.0), SlowedRunner)
