"""harness.backends.base: every capability a caller needs is declared, with defaults from the base classes; the run's
folders reach a backend in a BackendContext at creation; a runner that times its own loop is declared, not probed."""

from __future__ import annotations

from pathlib import Path

import pytest
from suite_runner import tensorrt_missing

from harness.backends.base import (
    Backend,
    BackendBase,
    BackendContext,
    BuildInfo,
    RunnerBase,
    get_backend,
)
from harness.core.measurement import Measurement
from harness.run.config import RunConfig
from harness.run.session import HarnessSession
from harness.suite.load import load_suite
from harness.suite.schema import MeasureSpec

needs_trt = pytest.mark.skipif(tensorrt_missing() is not None, reason=f"no TensorRT here: {tensorrt_missing()}")

SUITE = """
suite: protocol
models:
  - name: squeezenet
    onnx_zoo: light_squeezenet
batch_sizes: [1]
measure: {warmup_ms: 0, min_duration_ms: 1, min_iterations: 2, trials: 2}
"""


class Minimal(BackendBase):
    name = "minimal"

    def version(self) -> str:
        return "0"

    def build(self, model, case):
        raise NotImplementedError


class StepRunner(RunnerBase):
    def step(self) -> None:
        return None

    def outputs(self) -> dict:
        return {}


def test_a_minimal_backend_gets_every_declared_capability_from_the_base_class():
    backend: Backend = Minimal()
    assert backend.precisions == frozenset({"fp32"})
    assert dict(backend.precision_notes) == {}
    assert backend.uses_gpu is False
    assert backend.takes_typed_models is True
    assert backend.unavailable() is None
    assert backend.settings() == {}
    assert backend.context == BackendContext(Path(".harness-cache"), None)
    with pytest.raises(TypeError):  # the precision notes are shared by every instance: nobody may write them
        backend.precision_notes["fp16"] = "no"  # type: ignore[index]


def test_a_minimal_runner_is_timed_by_the_caller_and_has_nothing_to_release():
    runner = StepRunner()
    assert runner.measure(MeasureSpec(), batch_size=1) is None
    assert runner.close() is None
    with pytest.raises(TypeError, match="abstract"):
        RunnerBase()  # type: ignore[abstract]


def test_the_context_given_at_creation_is_the_backend_s():
    context = BackendContext(Path("somewhere"), Path("reports") / "artifacts")
    backend = get_backend("onnxruntime", {}, context)
    assert backend.context is context
    assert get_backend("onnxruntime").context == BackendContext()


def test_every_backend_declares_what_the_session_asks():
    ort = get_backend("onnxruntime")
    assert isinstance(ort, BackendBase)
    assert (ort.uses_gpu, ort.takes_typed_models) == (False, True)
    assert ort.precisions == frozenset({"fp32", "fp16", "int8"}) and "bf16" in ort.precision_notes
    assert ort.unavailable() is None

    torch = get_backend("torch")
    assert isinstance(torch, BackendBase)
    assert (torch.uses_gpu, torch.takes_typed_models) == (True, False)  # precision is the module's dtype
    assert "tf32" in torch.precisions


@needs_trt
def test_tensorrt_declares_which_model_it_builds_by_precision_mode():
    backend = get_backend("tensorrt")
    assert isinstance(backend, BackendBase)
    assert backend.uses_gpu is True and backend.takes_typed_models is True
    assert backend.precisions >= {"fp16", "bf16", "int8", "fp8"}


def test_the_session_creates_its_backend_with_the_run_s_folders(tmp_path):
    (tmp_path / "s.yaml").write_text(SUITE)
    suite = load_suite(tmp_path / "s.yaml")
    session = HarnessSession(RunConfig(report_dir=tmp_path / "r", cache_dir=tmp_path / "c"))
    backend = session.backend_for(suite)
    assert backend.context == BackendContext(tmp_path / "c", tmp_path / "r" / "artifacts")


class SelfTimed(RunnerBase):
    """A runner whose tool times the trial (as trtexec does): the session takes its measurement as it is."""

    steps = 0

    def step(self) -> None:
        SelfTimed.steps += 1

    def outputs(self) -> dict:
        return {}

    def measure(self, spec: MeasureSpec, batch_size: int) -> Measurement:
        return Measurement(batch_size, [1.0, 1.0, 1.0], wall_ms=3.0, warmup_iterations=0, warmup_ms=0.0)


def test_a_runner_that_times_itself_is_not_stepped(tmp_path):
    (tmp_path / "s.yaml").write_text(SUITE)
    (case,) = load_suite(tmp_path / "s.yaml").cases()
    session = HarnessSession(RunConfig(report_dir=tmp_path / "r", cache_dir=tmp_path / "c"))

    class Engine:
        build = BuildInfo(build_time_ms=1.0)

        def runner(self, feeds: dict) -> SelfTimed:
            return SelfTimed()

    SelfTimed.steps = 0
    (trials,) = session.measure_trials(case, [(case, Engine(), {})])
    assert SelfTimed.steps == 0
    assert [m.latency_ms for m in trials.measurements] == [[1.0, 1.0, 1.0]] * 2

    class Stepped(Engine):
        def runner(self, feeds: dict) -> StepRunner:
            return StepRunner()

    (stepped,) = session.measure_trials(case, [(case, Stepped(), {})])
    assert all(m.iterations >= 2 for m in stepped.measurements)  # timed by harness.measure.loop


@needs_trt
def test_tensorrt_keeps_engines_and_writes_files_where_its_context_says(tmp_path, monkeypatch):
    from harness.models.sources import prepare

    monkeypatch.chdir(tmp_path)  # a backend that ignored its context would write ./.harness-cache here
    (tmp_path / "s.yaml").write_text(SUITE)
    (case,) = load_suite(tmp_path / "s.yaml").cases()
    context = BackendContext(tmp_path / "run-cache", tmp_path / "reports" / "artifacts")
    backend = get_backend("tensorrt", {}, context)
    engine = backend.build(prepare(case.model, tmp_path / "models"), case)
    assert len(list((tmp_path / "run-cache" / "engines").glob("*.engine"))) == 1
    assert not (tmp_path / ".harness-cache").exists()
    assert engine.run.artifact_dir == tmp_path / "reports" / "artifacts"  # where its runner writes times and profiles
    assert engine.run.runtime_cache is not None and engine.run.runtime_cache.root == tmp_path / "run-cache"
